#!/usr/bin/env python3
"""Records what HF transformers makes of the demo model, for Disagg's tests (tests/Disagg.Cuda.Tests/DemoModel).

  python3 samples/Disagg.Train/hf_golden.py samples/models/disagg-demo

Loads the directory with AutoTokenizer + AutoModelForCausalLM (float32 on the CPU: deterministic, no TF32) and writes
hf_golden.json beside the model:
  prompts   for chat and raw prompts: the rendered text, HF's token ids, the full last-position logits, the gap between
            the two largest logits, and a greedy continuation (model.generate, stopping at the model's end tokens)
  heldout   HF's tokenization of heldout.txt (count and SHA-256 of the comma-joined ids), whether decoding gives the text
            back, and HF's held-out perplexity with eval.json's windows (consecutive, non-overlapping, context_length)
"""
import hashlib
import json
import math
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

CHATS = [
    [{"role": "user", "content": "What does John 3:16 say?"}],
    [{"role": "user", "content": "In the beginning God created the heaven and the earth."}],
    [{"role": "system", "content": "You are a preacher."}, {"role": "user", "content": "Tell me about Psalms 23."}],
    [{"role": "user", "content": "Recite Genesis 1:3."}, {"role": "assistant", "content": "And God said, Let there be light: and there was light."},
     {"role": "user", "content": "Go on."}],
]
RAW = ["Genesis 1\n\nIn the beginning", "And the LORD spake unto Moses, saying,"]
MAX_NEW_TOKENS = 48


def main(directory):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    end_ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")]

    prompts = []
    for messages in CHATS:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        prompts.append(record(model, tokenizer, "chat", text, end_ids, messages))
    for text in RAW:
        prompts.append(record(model, tokenizer, "raw", text, end_ids, None))

    with open(os.path.join(directory, "eval.json")) as f:
        evaluation = json.load(f)
    with open(os.path.join(directory, evaluation["heldout_file"]), encoding="utf-8") as f:
        heldout_text = f.read()
    ids = tokenizer(heldout_text, add_special_tokens=False)["input_ids"]
    nll, predicted = heldout_nll(model, ids, evaluation["context_length"])
    golden = {
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "dtype": "float32",
        "device": "cpu",
        "end_token_ids": end_ids,
        "prompts": prompts,
        "heldout": {
            "token_count": len(ids),
            "ids_sha256": hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest(),
            "decodes_to_text": tokenizer.decode(ids) == heldout_text,
            "context_length": evaluation["context_length"],
            "predicted_tokens": predicted,
            "mean_nll": nll / predicted,
            "perplexity": math.exp(nll / predicted),
        },
    }
    out = os.path.join(directory, "hf_golden.json")
    with open(out, "w") as f:
        json.dump(golden, f)
    print(f"wrote {out}: HF held-out perplexity {golden['heldout']['perplexity']:.4f} "
          f"(trainer: {evaluation['perplexity']:.4f}); {len(ids)} held-out tokens (trainer: {evaluation['tokens']})")
    for p in prompts:
        print(repr(p["text"][-60:]), "->", repr(p["greedy_text"]))


@torch.no_grad()
def record(model, tokenizer, kind, text, end_ids, messages):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    logits = model(torch.tensor([ids])).logits[0, -1].float()
    top2 = torch.topk(logits, 2).values
    generated = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                               do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=end_ids,
                               pad_token_id=end_ids[1])[0, len(ids):].tolist()
    return {
        "kind": kind,
        "messages": messages,
        "text": text,
        "ids": ids,
        "last_logits": logits.tolist(),
        "top2_gap": float(top2[0] - top2[1]),
        "greedy": generated,
        "greedy_text": tokenizer.decode(generated, skip_special_tokens=True),
    }


@torch.no_grad()
def heldout_nll(model, ids, context):
    total, predicted = 0.0, 0
    for start in range(0, len(ids), context):
        window = ids[start:start + context]
        if len(window) < 2:
            continue
        batch = torch.tensor([window])
        log_probs = torch.log_softmax(model(batch[:, :-1]).logits.float(), dim=-1)
        total -= log_probs.gather(2, batch[:, 1:].unsqueeze(2)).double().sum().item()
        predicted += len(window) - 1
    return total, predicted


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "models", "disagg-demo"))
