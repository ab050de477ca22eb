#!/usr/bin/env python3
"""Makes the tiny Hugging Face checkpoints under tests/Fixtures/models and their golden outputs.

The reference is HF transformers + tokenizers (run on the GPU machine, where they are installed; no network needed):
  python3 tests/Fixtures/make_fixtures.py --out tests/Fixtures/models

For each architecture it trains a small tokenizer of that model family's kind, builds a random-weight model of that
architecture (every parameter randomised, norms and biases included, so that each one matters), saves it the way
transformers does, reloads it from disk in float32 and records:
  golden.json            last-position logits for fixed prompts and 32 greedy tokens (full forward each step, no KV cache)
  tokenizer_golden.json  encode/decode of awkward texts and rendered chat templates
The llama3 fixture is rewritten into the classic config style most Hub checkpoints use (rope_scaling, torch_dtype,
PreTrainedTokenizerFast) before its goldens are taken, so the loader is tested on both styles.
"""
import argparse
import json
import os
import random
import shutil

import torch
import tokenizers
import transformers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

# Chat templates written for these fixtures in each family's format.
LLAMA3_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\n\n' + (m['content'] | trim) + '<|eot_id|>' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set msgs = messages[1:] %}"
    "{% else %}{% set sys = none %}{% set msgs = messages %}{% endif %}"
    "{% for m in msgs %}{% if m['role'] == 'user' %}"
    "{% if loop.first and sys is not none %}{% set content = '<<SYS>>\n' + sys + '\n<</SYS>>\n\n' + m['content'] %}"
    "{% else %}{% set content = m['content'] %}{% endif %}"
    "{{ bos_token + '[INST] ' + (content | trim) + ' [/INST]' }}"
    "{% else %}{{ ' ' + (m['content'] | trim) + ' ' + eos_token }}{% endif %}{% endfor %}"
)
MISTRAL_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set sys = messages[0]['content'] %}{% set msgs = messages[1:] %}"
    "{% else %}{% set sys = none %}{% set msgs = messages %}{% endif %}"
    "{{ bos_token }}{% for m in msgs %}{% if m['role'] == 'user' %}"
    "{% if loop.first and sys is not none %}{% set content = sys + '\n\n' + m['content'] %}"
    "{% else %}{% set content = m['content'] %}{% endif %}"
    "{{ '[INST] ' + content + ' [/INST]' }}"
    "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}"
)

WORDS = ("the a of to and in is it you that he was for on are with as his they be at one have this from or had by "
         "word but what some we can out other were all there when up use your how said an each she which do their "
         "time if will way about many then them write would like so these her long make thing see him two has look "
         "more day could go come did number sound no most people my over know water than call first who may down side "
         "been now find any new work part take get place made live where after back little only round man year came "
         "show every good me give our under name very through just form sentence great think say help low line differ "
         "turn cause much mean before move right boy old too same tell does set three want air well also play small end "
         "put home read hand port large spell add even land here must big high such follow act why ask men change went "
         "light kind off need house picture try us again animal point mother world near build self earth father head "
         "stand own page should country found answer school grow study still learn plant cover food sun four between "
         "prefill decode cache block token tensor device kernel batch stream latency throughput memory transfer").split()
EXTRA = [
    "Disaggregated inference runs prefill and decode on separate GPUs, shipping the KV cache between them.",
    "def forward(self, x):\n    return self.linear(x) + 1  # residual\n",
    "Numbers like 12, 345, 6789 and 3.14159 appear; so do dates: 2026-11-23.",
    "Ünïcödé façade naïve café résumé — “quotes” and ‘apostrophes’.",
    "日本語のテキストと中文文本。 한국어 텍스트.",
    "Emoji: 🚀🔥👍 and tabs\tand  double  spaces.",
    "It's what they're saying: we'll see, I'd think, you've heard, I'm sure.",
]
TEXT_CASES = [
    "Hello world",
    " leading space",
    "trailing space ",
    "multiple   spaces\tand\ttabs\nnew\n\nlines\r\n",
    "Numbers: 1234567 and 3.14159",
    "Ünïcödé façade naïve",
    "日本語のテキスト",
    "emoji 🚀🔥 and ZWJ 👩‍💻 family",
    "It's, they're, we'll — apostrophes",
    "unseen symbols ∑∫√ and ǅ",
    "",
    " ",
    "\n",
]
CONVERSATIONS = [
    ([{"role": "user", "content": "What is disaggregated inference?"}], True),
    ([{"role": "system", "content": "You are terse."}, {"role": "user", "content": " Hi there! "}], True),
    ([{"role": "system", "content": "Be kind."}, {"role": "user", "content": "Count to three."},
      {"role": "assistant", "content": "One, two, three."}, {"role": "user", "content": "Now in 日本語?"}], True),
    ([{"role": "user", "content": "Ping"}, {"role": "assistant", "content": "Pong"}], False),
]


def corpus(seed=1234, lines=3000):
    rng = random.Random(seed)
    out = list(EXTRA) * 20
    for _ in range(lines):
        n = rng.randint(4, 16)
        words = [rng.choice(WORDS) for _ in range(n)]
        if rng.random() < 0.3:
            words[0] = words[0].capitalize()
        line = " ".join(words) + rng.choice([".", "!", "?", ",", ":", ""])
        if rng.random() < 0.2:
            line += " " + str(rng.randint(0, 99999))
        out.append(line)
    return out


def byte_level_tokenizer(split_pattern, specials, bos, nfc):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    if nfc:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    tok.add_special_tokens(specials)  # after the learned vocab, as in the real models
    if bos is not None:
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def sentencepiece_style_tokenizer():
    # Train with a Metaspace pre-tokenizer so merges stay inside words, then rebuild the model the way Llama 2's
    # tokenizer.json is laid out: <unk> <s> </s> <0x00>..<0xFF> first, byte fallback, a Prepend/Replace normalizer.
    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<unk>"], show_progress=False)
    trainer_tok.train_from_iterator(corpus(), trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(trained["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens(["<unk>", "<s>", "</s>"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    return tok


def hf_tokenizer(tok, template, **special):
    return PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=template, **special)


def make_config(cls, rope, **kw):
    """transformers 5 takes rope settings as rope_parameters; older versions as rope_theta + rope_scaling."""
    try:
        cfg = cls(rope_parameters=dict(rope), **kw)
        if getattr(cfg, "rope_parameters", None):
            return cfg
    except TypeError:
        pass
    legacy = dict(rope)
    theta = legacy.pop("rope_theta")
    scaling = legacy if legacy.get("rope_type", "default") != "default" else None
    return cls(rope_theta=theta, rope_scaling=scaling, **kw)


def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight") or "layernorm" in name or "_norm" in name:
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.2 * noise)
            elif "embed_tokens" in name:
                p.copy_(1.0 * noise)
            else:
                p.copy_(noise / (p.shape[-1] ** 0.5) * 1.5)


def to_classic_style(directory):
    """Rewrites transformers-5 style files into the classic style of most Hub checkpoints."""
    path = os.path.join(directory, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    rp = cfg.pop("rope_parameters", None)
    if rp:
        rp = dict(rp)
        cfg["rope_theta"] = rp.pop("rope_theta")
        if rp.get("rope_type", "default") != "default":
            cfg["rope_scaling"] = rp
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)
    path = os.path.join(directory, "tokenizer_config.json")
    with open(path) as f:
        tc = json.load(f)
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    jinja = os.path.join(directory, "chat_template.jinja")  # transformers 5 writes the template beside the config
    if os.path.exists(jinja):
        with open(jinja) as f:
            tc["chat_template"] = f.read()
        os.remove(jinja)
    with open(path, "w") as f:
        json.dump(tc, f, indent=2, ensure_ascii=False)


def prompts_for(tokenizer):
    texts = [
        "Hello world, this is Disagg.",
        " ".join(EXTRA[:3]) + " the prefill and decode workers share blocks of keys and values across devices",
    ]
    prompts = [tokenizer.encode(t) for t in texts]
    prompts[1] = prompts[1][:48]
    chat = tokenizer.apply_chat_template(CONVERSATIONS[2][0], tokenize=False, add_generation_prompt=True)
    prompts.append(tokenizer.encode(chat, add_special_tokens=False))
    return prompts


def golden(model, prompts, steps=32):
    out = []
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids])
            last = model(input_ids=x, use_cache=False).logits[0, -1].float()
            seq = list(ids)
            greedy = []
            for _ in range(steps):
                logits = model(input_ids=torch.tensor([seq]), use_cache=False).logits[0, -1]
                t = int(torch.argmax(logits))
                greedy.append(t)
                seq.append(t)
            top2 = torch.topk(last, 2).values
            out.append({"ids": ids, "last_logits": [round(v, 6) for v in last.tolist()],
                        "top2_gap": float(top2[0] - top2[1]), "greedy": greedy})
    return out


def tokenizer_golden(tokenizer):
    cases = []
    for text in TEXT_CASES:
        ids = tokenizer.encode(text, add_special_tokens=False)
        with_special = tokenizer.encode(text, add_special_tokens=True)
        cases.append({
            "text": text, "ids": ids, "ids_with_special": with_special,
            "decoded": tokenizer.decode(with_special, skip_special_tokens=False),
            "decoded_skip_special": tokenizer.decode(with_special, skip_special_tokens=True),
        })
    chats = []
    for messages, gen in CONVERSATIONS:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
        chats.append({"messages": messages, "add_generation_prompt": gen, "text": text,
                      "ids": tokenizer.encode(text, add_special_tokens=False)})
    return {"cases": cases, "chat": chats}


def build(out, name, arch, tokenizer, config_kw, rope, dtype, seed, shard=None, classic=False, generation=None):
    from transformers import LlamaConfig, MistralConfig, Qwen2Config, Qwen3Config
    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}[arch]
    d = os.path.join(out, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    torch.manual_seed(seed)
    cfg = make_config(cls, rope, vocab_size=len(tokenizer), **config_kw)
    model = AutoModelForCausalLM.from_config(cfg)
    randomise(model, seed)
    model = model.to(dtype)
    if generation:
        for k, v in generation.items():
            setattr(model.generation_config, k, v)
    model.save_pretrained(d, max_shard_size=shard) if shard else model.save_pretrained(d)
    tokenizer.save_pretrained(d)
    if classic:
        to_classic_style(d)
    # The reference: the checkpoint as saved, reloaded from disk and run in float32 with eager attention.
    ref = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(d)
    with open(os.path.join(d, "golden.json"), "w") as f:
        json.dump({"model": name, "saved_dtype": str(dtype).replace("torch.", ""), "prompts": golden(ref, prompts_for(tok))}, f)
    with open(os.path.join(d, "tokenizer_golden.json"), "w") as f:
        json.dump(tokenizer_golden(tok), f, ensure_ascii=False, indent=1)
    print(name, "done:", sorted(os.listdir(d)), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "models"))
    ap.add_argument("--only", nargs="*")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.use_deterministic_algorithms(True)

    l3_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    llama3_tok = hf_tokenizer(byte_level_tokenizer(LLAMA3_SPLIT, l3_specials, "<|begin_of_text|>", nfc=False), LLAMA3_TEMPLATE,
                              bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    qwen_tok = hf_tokenizer(byte_level_tokenizer(QWEN_SPLIT, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, nfc=True),
                            CHATML_TEMPLATE, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    sp = sentencepiece_style_tokenizer()
    llama2_tok = hf_tokenizer(sp, LLAMA2_TEMPLATE, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    mistral_tok = hf_tokenizer(sentencepiece_style_tokenizer(), MISTRAL_TEMPLATE, bos_token="<s>", eos_token="</s>", unk_token="<unk>")

    small = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 max_position_embeddings=256, rms_norm_eps=1e-5)
    l3_eos = [llama3_tok.convert_tokens_to_ids("<|end_of_text|>"), llama3_tok.convert_tokens_to_ids("<|eot_id|>")]
    jobs = {
        "llama3": lambda: build(args.out, "llama3", "llama", llama3_tok,
                                dict(small, tie_word_embeddings=False,
                                     bos_token_id=llama3_tok.bos_token_id, eos_token_id=l3_eos),
                                dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=32),
                                torch.bfloat16, seed=3, classic=True,
                                generation=dict(bos_token_id=llama3_tok.bos_token_id, eos_token_id=l3_eos)),
        "llama2": lambda: build(args.out, "llama2", "llama", llama2_tok,
                                dict(small, num_key_value_heads=4, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
                                dict(rope_type="default", rope_theta=10000.0), torch.float32, seed=2),
        "qwen2": lambda: build(args.out, "qwen2", "qwen2", qwen_tok,
                               dict(small, tie_word_embeddings=True, eos_token_id=qwen_tok.eos_token_id),
                               dict(rope_type="default", rope_theta=1000000.0), torch.float16, seed=5),
        "qwen3": lambda: build(args.out, "qwen3", "qwen3", qwen_tok,
                               dict(small, head_dim=32, tie_word_embeddings=False, eos_token_id=qwen_tok.eos_token_id),
                               dict(rope_type="default", rope_theta=1000000.0), torch.float32, seed=7, shard="150KB"),
        "mistral": lambda: build(args.out, "mistral", "mistral", mistral_tok,
                                 dict(small, sliding_window=24, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2),
                                 dict(rope_type="default", rope_theta=10000.0), torch.float32, seed=11),
    }
    failed = []
    for name, job in jobs.items():
        if args.only and name not in args.only:
            continue
        try:
            job()
        except Exception as e:  # keep going: one architecture's failure should not hide the others
            import traceback
            traceback.print_exc()
            failed.append(name)
    with open(os.path.join(args.out, "MANIFEST.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
                   "made_by": "tests/Fixtures/make_fixtures.py", "failed": failed}, f, indent=1)
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()
