#!/usr/bin/env python3
"""Writes a random-weight Hugging Face checkpoint of a real model's shape, for performance runs on the GPU machine.

  python3 benchmarks/gpu/make_random_checkpoint.py --shape qwen2.5-0.5b --out /tmp/qwen05
Weights are N(0, 0.02) in bfloat16 (norms 1), generated on the GPU when there is one. No tokenizer: benchmarks feed token ids.
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file

SHAPES = {
    "qwen2.5-0.5b": dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_size=896, intermediate_size=4864,
                         num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                         max_position_embeddings=32768, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                         bias=True),
    "llama3-8b": dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=4096, intermediate_size=14336,
                      num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                      max_position_embeddings=8192, rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                      bias=False),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    s = dict(SHAPES[args.shape])
    bias = s.pop("bias")
    os.makedirs(args.out, exist_ok=True)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    h, i, n, kv = s["hidden_size"], s["intermediate_size"], s["num_attention_heads"], s["num_key_value_heads"]
    d = h // n

    def rnd(*shape):
        return (torch.randn(*shape, generator=g, device=dev, dtype=torch.float32) * 0.02).to(torch.bfloat16).cpu()

    t = {"model.embed_tokens.weight": rnd(s["vocab_size"], h), "model.norm.weight": torch.ones(h, dtype=torch.bfloat16)}
    if not s["tie_word_embeddings"]:
        t["lm_head.weight"] = rnd(s["vocab_size"], h)
    for layer in range(s["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        t[p + "input_layernorm.weight"] = torch.ones(h, dtype=torch.bfloat16)
        t[p + "post_attention_layernorm.weight"] = torch.ones(h, dtype=torch.bfloat16)
        t[p + "self_attn.q_proj.weight"] = rnd(n * d, h)
        t[p + "self_attn.k_proj.weight"] = rnd(kv * d, h)
        t[p + "self_attn.v_proj.weight"] = rnd(kv * d, h)
        t[p + "self_attn.o_proj.weight"] = rnd(h, n * d)
        if bias:
            for name, size in (("q", n * d), ("k", kv * d), ("v", kv * d)):
                t[p + f"self_attn.{name}_proj.bias"] = rnd(size)
        t[p + "mlp.gate_proj.weight"] = rnd(i, h)
        t[p + "mlp.up_proj.weight"] = rnd(i, h)
        t[p + "mlp.down_proj.weight"] = rnd(h, i)
    save_file(t, os.path.join(args.out, "model.safetensors"), metadata={"format": "pt"})
    cfg = dict(s, hidden_act="silu", torch_dtype="bfloat16", bos_token_id=1, eos_token_id=2)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    print(args.shape, "written to", args.out, sum(v.numel() for v in t.values()) / 1e9, "B params")


if __name__ == "__main__":
    main()
