#!/usr/bin/env python3
"""Baselines for the issue-5 targets, measured on the same random-weight checkpoint that Disagg.GpuBench perf runs.

  python3 benchmarks/gpu/baselines.py --model /tmp/llama8b --out baselines.json [--device cuda:0]

Measurements (the "measurements" array of the output; names are what GpuBench perf looks up):
  hf_generate_batch1_decode      HF transformers generate() (bf16, sdpa attention, greedy, exactly N new tokens): decode
                                 tokens/s = (N - 1) / (T(N new tokens) - T(1 new token)), so the prompt's prefill is excluded
  hf_generate_batched_output     generate() at a static batch (32): batch * N / T(N) output tokens/s, prefill included
  hf_forward_prefill             one forward pass over a 2,048-token prompt (logits at every position, as a plain call
                                 computes them), median ms; hf_forward_prefill_last_logit computes only the last position's
  torch_loop_{eager,graph}_batch1_decode, torch_loop_{eager,graph}_batched_output
                                 a plain PyTorch decode loop written here (Llama / Qwen2 / Mistral from config.json and the
                                 safetensors, static contiguous KV cache, greedy), eager and with each decode step replayed
                                 as a CUDA graph; the same definitions as the HF rows (batched: 64 streams by default)
  hbm_copy_bandwidth             device memory bandwidth of a 1 GiB device-to-device copy (read + write), GB/s
  hbm_roofline_batch1_decode     the batch-1 decode rate that bandwidth allows when every weight a token needs is read once
A measurement that fails is recorded under "errors" and the others still run. --check-golden FILE runs the plain loop on a
tests/Fixtures model in float32 and compares its greedy tokens with the fixture's golden.json (a correctness check that
needs neither a GPU nor transformers).
"""
import argparse
import gc
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

SAFETENSORS_DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32}
SUPPORTED = {"LlamaForCausalLM", "Qwen2ForCausalLM", "MistralForCausalLM"}


# ----------------------------------------------------------------------------------------------------------------- timing

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, fn):
    """Seconds that fn() takes, with the device drained before and after."""
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return time.perf_counter() - start, result


# -------------------------------------------------------------------------------------------------------- the checkpoint

def read_safetensors(model_dir):
    """All tensors of the checkpoint (single file or sharded with an index), read with the format's own layout:
    an 8-byte little-endian header length, a JSON header of {name: {dtype, shape, data_offsets}}, then the raw bytes."""
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        with open(os.path.join(model_dir, name), "rb") as f:
            (size,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(size))
            for key, info in header.items():
                if key == "__metadata__":
                    continue
                dtype = SAFETENSORS_DTYPES.get(info["dtype"])
                if dtype is None:
                    raise ValueError(f"{name}: tensor {key} has dtype {info['dtype']}, which this loop does not read")
                begin, end = info["data_offsets"]
                if end == begin:
                    tensors[key] = torch.empty(info["shape"], dtype=dtype)
                    continue
                f.seek(8 + size + begin)
                buffer = bytearray(end - begin)
                f.readinto(buffer)
                tensors[key] = torch.frombuffer(buffer, dtype=dtype).reshape(info["shape"])
    return tensors


def rope_inverse_frequencies(cfg, head_dim):
    params = cfg.get("rope_parameters") or {}
    theta = cfg.get("rope_theta") or params.get("rope_theta") or 10000.0
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    scaling = cfg.get("rope_scaling") or params
    kind = scaling.get("rope_type") or scaling.get("type") or "default"
    if kind == "default":
        return inv
    if kind != "llama3":
        raise NotImplementedError(f"rope type {kind} is not supported by the plain loop")
    # Llama 3.1 scaling: long wavelengths are divided by the factor, short ones kept, the band between interpolated.
    factor, low, high = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    old = scaling["original_max_position_embeddings"]
    wavelength = 2 * math.pi / inv
    scaled = torch.where(wavelength > old / low, inv / factor, inv)
    blend = (old / wavelength - low) / (high - low)
    between = (wavelength <= old / low) & (wavelength >= old / high)
    return torch.where(between, (1 - blend) * scaled / factor + blend * scaled, scaled)


# ------------------------------------------------------------------------------------------------------ the plain model

def rms_norm(x, weight, eps):
    xf = x.float()
    return weight * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class PlainDecoder:
    """A Llama-family forward pass in plain torch over a static contiguous KV cache (one [batch, kv_heads, max_len, head_dim]
    tensor per layer for keys and one for values). Query heads of one KV head are folded into the query rows, so grouped
    attention needs no copy of the cache. q/k/v and gate/up projections are fused into one matmul each."""

    def __init__(self, cfg, weights, device, dtype):
        arch = (cfg.get("architectures") or ["?"])[0]
        if arch not in SUPPORTED:
            raise NotImplementedError(f"{arch} is not supported by the plain loop (only {', '.join(sorted(SUPPORTED))})")
        if any(".q_norm." in k or ".o_proj.bias" in k or ".mlp.gate_proj.bias" in k for k in weights):
            raise NotImplementedError("q/k norms and output or MLP biases are not supported by the plain loop")
        self.heads = cfg["num_attention_heads"]
        self.kv_heads = cfg.get("num_key_value_heads") or self.heads
        self.head_dim = cfg.get("head_dim") or cfg["hidden_size"] // self.heads
        self.group = self.heads // self.kv_heads
        self.eps = cfg["rms_norm_eps"]
        self.scale = self.head_dim ** -0.5
        self.cfg, self.device, self.dtype = cfg, device, dtype

        def w(name):
            return weights[name].to(device=device, dtype=dtype)

        self.embed = w("model.embed_tokens.weight")
        tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in weights
        self.lm_head = self.embed if tied else w("lm_head.weight")
        self.norm = w("model.norm.weight")
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = f"model.layers.{i}."
            qkv_bias = None
            if p + "self_attn.q_proj.bias" in weights:
                qkv_bias = torch.cat([w(p + f"self_attn.{x}_proj.bias") for x in "qkv"])
            self.layers.append(dict(
                ln1=w(p + "input_layernorm.weight"),
                qkv=torch.cat([w(p + f"self_attn.{x}_proj.weight") for x in "qkv"]),
                qkv_bias=qkv_bias,
                o=w(p + "self_attn.o_proj.weight"),
                ln2=w(p + "post_attention_layernorm.weight"),
                gate_up=torch.cat([w(p + "mlp.gate_proj.weight"), w(p + "mlp.up_proj.weight")]),
                down=w(p + "mlp.down_proj.weight"),
            ))
        self.keys = self.values = []

    def allocate(self, batch, max_len):
        """(Re)allocates the KV cache and rotary tables for batch sequences of up to max_len tokens."""
        window = self.cfg.get("sliding_window")
        if window and window < max_len and (self.cfg["architectures"][0] == "MistralForCausalLM" or self.cfg.get("use_sliding_window")):
            raise NotImplementedError(f"sliding-window attention ({window} tokens) is not supported by the plain loop")
        self.keys = self.values = []
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.max_len = max_len
        freqs = torch.outer(torch.arange(max_len, dtype=torch.float32), rope_inverse_frequencies(self.cfg, self.head_dim))
        angles = torch.cat((freqs, freqs), dim=-1)
        self.cos, self.sin = angles.cos().to(self.device, self.dtype), angles.sin().to(self.device, self.dtype)
        shape = (batch, self.kv_heads, max_len, self.head_dim)
        self.keys = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in self.layers]
        self.values = [torch.zeros(shape, device=self.device, dtype=self.dtype) for _ in self.layers]
        self.key_positions = torch.arange(max_len, device=self.device)
        return self

    def forward(self, ids, positions):
        """Runs tokens ids [batch, T] at positions [T] (a device tensor), writes their KV, returns the last position's logits."""
        batch, t = ids.shape
        kv, g, d = self.kv_heads, self.group, self.head_dim
        x = F.embedding(ids, self.embed)
        cos, sin = self.cos[positions], self.sin[positions]                        # [T, d]: broadcast over batch and heads
        visible = self.key_positions[None, :] <= positions[:, None]                # [T, max_len]: causal over the whole cache
        bias = torch.zeros(visible.shape, device=self.device, dtype=self.dtype).masked_fill(~visible, float("-inf"))
        bias = bias.repeat(g, 1)                                                   # rows ordered (group member, t)
        for layer, p in enumerate(self.layers):
            h = rms_norm(x, p["ln1"], self.eps)
            q, k, v = F.linear(h, p["qkv"], p["qkv_bias"]).split([self.heads * d, kv * d, kv * d], dim=-1)
            q = q.view(batch, t, kv, g, d).permute(0, 2, 3, 1, 4)                  # [B, kv, g, T, d]
            k = k.view(batch, t, kv, d).transpose(1, 2)                            # [B, kv, T, d]
            v = v.view(batch, t, kv, d).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            self.keys[layer].index_copy_(2, positions, k)
            self.values[layer].index_copy_(2, positions, v)
            scores = torch.matmul(q.reshape(batch, kv, g * t, d), self.keys[layer].transpose(-1, -2)) * self.scale
            probs = torch.softmax((scores + bias).float(), dim=-1).to(self.dtype)
            o = torch.matmul(probs, self.values[layer])                            # [B, kv, g*T, d]
            o = o.view(batch, kv, g, t, d).permute(0, 3, 1, 2, 4).reshape(batch, t, self.heads * d)
            x = x + F.linear(o, p["o"])
            gate, up = F.linear(rms_norm(x, p["ln2"], self.eps), p["gate_up"]).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, p["down"])
        return F.linear(rms_norm(x[:, -1], self.norm, self.eps), self.lm_head)


def decode_eager(model, prompt, new_tokens):
    """Greedy: prefill the prompt, then new_tokens - 1 eager decode steps. Returns tokens, prefill seconds, decode seconds."""
    length = prompt.shape[1]
    positions = torch.arange(model.max_len, device=model.device)
    with torch.inference_mode():
        prefill_s, token = timed(model.device, lambda: model.forward(prompt, positions[:length]).argmax(-1))
        out = [token]

        def steps():
            tok = token
            for i in range(new_tokens - 1):
                tok = model.forward(tok[:, None], positions[length + i:length + i + 1]).argmax(-1)
                out.append(tok)

        decode_s, _ = timed(model.device, steps)
    return torch.stack(out, dim=1), prefill_s, decode_s


def capture_cuda_graph(step, device):
    """Captures step() as a CUDA graph (after warming it up on a side stream, as capture requires) and returns its replay."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(2):
            step()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay


def decode_static(model, prompt, new_tokens, capture=capture_cuda_graph):
    """As decode_eager, but every decode step reads and writes static buffers (the last token, the position), so that one
    step can be captured once and replayed; capture=None runs the same steps eagerly (to check this path without a GPU)."""
    batch, length = prompt.shape
    dev = model.device
    if capture and length + 3 > model.max_len:
        raise ValueError(f"the cache holds {model.max_len} positions: too few for the warm-up steps after a {length}-token prompt")
    with torch.inference_mode():
        token = torch.zeros(batch, 1, dtype=torch.long, device=dev)
        position = torch.full((1,), length, dtype=torch.long, device=dev)

        def step():
            token.copy_(model.forward(token, position).argmax(-1, keepdim=True))
            position.add_(1)

        # KV that warm-up and capture write at the prompt's end is overwritten by the real steps before it is read.
        replay = capture(step, dev) if capture else step
        positions = torch.arange(length, device=dev)

        def prefill():
            first = model.forward(prompt, positions).argmax(-1)
            token.copy_(first[:, None])
            position.fill_(length)
            return first

        prefill_s, first = timed(dev, prefill)
        out = [first]

        def steps():
            for _ in range(new_tokens - 1):
                replay()
                out.append(token[:, 0].clone())

        decode_s, _ = timed(dev, steps)
    return torch.stack(out, dim=1), prefill_s, decode_s


# ----------------------------------------------------------------------------------------------------- the measurements

class Results:
    def __init__(self):
        self.measurements, self.errors = [], []

    def run(self, name, fn):
        """Runs fn() -> list of (name, value, unit, detail); a failure is recorded, not raised."""
        print(f"[{time.strftime('%H:%M:%S')}] baselines: {name}", file=sys.stderr, flush=True)
        try:
            for m_name, value, unit, detail in fn():
                self.measurements.append(dict(name=m_name, value=value, unit=unit, **detail))
                print(f"  {m_name} = {value:.4g} {unit}", file=sys.stderr, flush=True)
        except Exception as e:  # noqa: BLE001 - one failed baseline must not lose the others
            self.errors.append(dict(name=name, error=f"{type(e).__name__}: {e}"))
            print(f"  failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def random_ids(generator, vocab, batch, length, device):
    return torch.randint(0, vocab, (batch, length), generator=generator).to(device)


def hf_measurements(args, cfg, device, dtype, gen):
    import transformers
    from transformers import AutoModelForCausalLM

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    kwargs = {"attn_implementation": "sdpa", ("dtype" if (major, minor) >= (4, 56) else "torch_dtype"): dtype}
    model = AutoModelForCausalLM.from_pretrained(args.model, **kwargs).to(device).eval()
    vocab, pad = cfg["vocab_size"], (cfg.get("pad_token_id") or 0)

    def generate_seconds(ids, new_tokens):
        def call():
            with torch.inference_mode():
                return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                      min_new_tokens=new_tokens, do_sample=False, pad_token_id=pad)
        seconds, out = timed(device, call)
        if out.shape[1] != ids.shape[1] + new_tokens:
            raise RuntimeError(f"generate() returned {out.shape[1] - ids.shape[1]} new tokens, not {new_tokens}")
        return seconds

    def batch1():
        ids = random_ids(gen, vocab, 1, args.prompt_tokens, device)
        generate_seconds(ids, 4)
        one = statistics.median(generate_seconds(ids, 1) for _ in range(3))
        n = args.hf_decode_tokens
        full = statistics.median(generate_seconds(ids, n) for _ in range(2))
        if full <= one:
            raise RuntimeError(f"generate() of {n} tokens took no longer than of 1 ({full:.4f} s <= {one:.4f} s)")
        return [("hf_generate_batch1_decode", (n - 1) / (full - one), "tok/s",
                 dict(prompt_tokens=args.prompt_tokens, new_tokens=n, seconds_new_tokens=full, seconds_one_token=one))]

    def batched():
        ids = random_ids(gen, vocab, args.batch, args.prompt_tokens, device)
        generate_seconds(ids, 4)
        n = args.batch_tokens
        seconds = statistics.median(generate_seconds(ids, n) for _ in range(2))
        return [("hf_generate_batched_output", args.batch * n / seconds, "tok/s",
                 dict(batch=args.batch, prompt_tokens=args.prompt_tokens, new_tokens=n, seconds=seconds))]

    def forward():
        ids = random_ids(gen, vocab, 1, args.prefill_tokens, device)
        rows = []
        for name, extra in (("hf_forward_prefill", {}), ("hf_forward_prefill_last_logit", {"logits_to_keep": 1})):
            def call():
                with torch.inference_mode():
                    return model(ids, **extra).logits
            try:
                for _ in range(2):
                    timed(device, call)
            except TypeError:
                continue  # this transformers has no logits_to_keep
            ms = [1e3 * timed(device, call)[0] for _ in range(args.prefill_runs)]
            rows.append((name, statistics.median(ms), "ms", dict(prompt_tokens=args.prefill_tokens, runs_ms=ms)))
        return rows

    results = [("hf_generate_batch1_decode", batch1), ("hf_generate_batched_output", batched), ("hf_forward_prefill", forward)]
    return model, results


def loop_measurements(args, cfg, weights, device, dtype, gen):
    vocab = cfg["vocab_size"]
    loaded = []  # the decoder, built on first use and shared by every run (weights are moved to the device once)

    def run(kind, batch, new_tokens):
        if not loaded:
            loaded.append(PlainDecoder(cfg, weights, device, dtype))
        model = loaded[0].allocate(batch, args.prompt_tokens + new_tokens)
        prompt = random_ids(gen, vocab, batch, args.prompt_tokens, device)
        go = decode_static if kind == "graph" else decode_eager
        go(model, prompt, min(8, new_tokens))  # warm-up
        tokens, prefill_s, decode_s = go(model, prompt, new_tokens)
        detail = dict(batch=batch, prompt_tokens=args.prompt_tokens, new_tokens=new_tokens, prefill_s=prefill_s, decode_s=decode_s)
        if kind == "graph":
            reference = decode_eager(model, prompt, min(16, new_tokens))[0]
            detail["first_tokens_equal_eager"] = bool(torch.equal(tokens[:, :reference.shape[1]], reference))
        if batch == 1:
            return [(f"torch_loop_{kind}_batch1_decode", (new_tokens - 1) / decode_s, "tok/s", detail)]
        return [(f"torch_loop_{kind}_batched_output", batch * new_tokens / (prefill_s + decode_s), "tok/s", detail)]

    kinds = ["eager"] + (["graph"] if device.type == "cuda" and not args.no_graphs else [])
    return [(f"torch_loop_{kind}_{'batch1' if b == 1 else 'batched'}", (lambda k=kind, b=b, n=n: run(k, b, n)))
            for kind in kinds for b, n in ((1, args.loop_decode_tokens), (args.loop_batch, args.loop_batch_tokens))]


def hbm_measurements(cfg, weights, device):
    def measure():
        x = torch.empty(1 << 29, dtype=torch.bfloat16, device=device)  # 1 GiB
        y = torch.empty_like(x)
        for _ in range(3):
            y.copy_(x)
        seconds = statistics.median(timed(device, lambda: y.copy_(x))[0] for _ in range(10))
        bandwidth = 2 * x.numel() * x.element_size() / seconds / 1e9  # read + write
        per_token = sum(t.numel() for t in weights.values()) * 2  # bf16
        embed = weights["model.embed_tokens.weight"].numel() * 2
        tied = cfg.get("tie_word_embeddings", False) or "lm_head.weight" not in weights
        per_token -= 0 if tied else embed  # a token reads one row of an untied embedding table, all of it as a tied lm_head
        return [("hbm_copy_bandwidth", bandwidth, "GB/s", dict(bytes=2 * x.numel() * x.element_size())),
                ("hbm_roofline_batch1_decode", bandwidth * 1e9 / per_token, "tok/s", dict(weight_bytes_per_token=per_token))]
    return measure


def check_golden(args, cfg, weights, device):
    """Greedy tokens of the plain loop (float32), eager and through the static-buffer steps the CUDA graph replays (run
    eagerly here), against a fixture's golden.json from HF transformers."""
    with open(args.check_golden) as f:
        golden = json.load(f)
    report = []
    decoder = PlainDecoder(cfg, weights, device, torch.float32)
    for case in golden["prompts"]:
        want = case["greedy"]
        model = decoder.allocate(1, len(case["ids"]) + len(want))
        prompt = torch.tensor([case["ids"]], device=device)
        got = decode_eager(model, prompt, len(want))[0][0].tolist()
        static = decode_static(model, prompt, len(want), capture=None)[0][0].tolist()
        report.append(dict(prompt_tokens=len(case["ids"]), equal=got == want and static == want, got=got, static=static, golden=want))
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json + safetensors)")
    ap.add_argument("--out", required=True, help="where to write the baselines JSON")
    ap.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--commit", default=os.environ.get("DISAGG_COMMIT", "unknown"))
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--hf-decode-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32, help="static batch of the batched HF generate() row")
    ap.add_argument("--batch-tokens", type=int, default=64)
    ap.add_argument("--prefill-tokens", type=int, default=2048)
    ap.add_argument("--prefill-runs", type=int, default=10)
    ap.add_argument("--loop-decode-tokens", type=int, default=256)
    ap.add_argument("--loop-batch", type=int, default=64)
    ap.add_argument("--loop-batch-tokens", type=int, default=128)
    ap.add_argument("--skip-hf", action="store_true")
    ap.add_argument("--skip-loop", action="store_true")
    ap.add_argument("--no-graphs", action="store_true", help="skip the CUDA-graph variant of the plain loop")
    ap.add_argument("--check-golden", help="a fixture's golden.json: compare the plain loop's greedy tokens (float32) and exit")
    args = ap.parse_args()

    device = torch.device(args.device)
    with open(os.path.join(args.model, "config.json")) as f:
        cfg = json.load(f)
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    weights = read_safetensors(args.model)
    if args.check_golden:
        report = check_golden(args, cfg, weights, device)
        with open(args.out, "w") as f:
            json.dump(dict(model=args.model, golden=args.check_golden, cases=report), f, indent=1)
        print(json.dumps([dict(prompt_tokens=r["prompt_tokens"], equal=r["equal"]) for r in report]))
        sys.exit(0 if all(r["equal"] for r in report) else 1)

    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    gen = torch.Generator().manual_seed(5)
    results = Results()
    if device.type == "cuda":
        results.run("hbm", hbm_measurements(cfg, weights, device))
    if not args.skip_hf:
        try:
            model, hf = hf_measurements(args, cfg, device, dtype, gen)
            for name, fn in hf:
                results.run(name, fn)
            del model
        except Exception as e:  # noqa: BLE001 - e.g. no transformers here; the plain loop still runs
            results.errors.append(dict(name="hf_load", error=f"{type(e).__name__}: {e}"))
            print(f"  HF transformers unavailable: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if not args.skip_loop:
        for name, fn in loop_measurements(args, cfg, weights, device, dtype, gen):
            results.run(name, fn)

    try:
        import transformers
        hf_version = transformers.__version__
    except ImportError:
        hf_version = None
    count = torch.cuda.device_count() if device.type == "cuda" else 0
    names = sorted({torch.cuda.get_device_name(i) for i in range(count)}) if count else ["cpu"]
    report = dict(
        schema="disagg.baselines/1",
        device=dict(name=" + ".join(names), count=max(count, 1), source="torch", used=str(device)),
        commit=args.commit,
        command="python3 " + " ".join(sys.argv),
        started_utc=started,
        torch=torch.__version__,
        transformers=hf_version,
        model=dict(path=args.model, architecture=(cfg.get("architectures") or ["?"])[0], hidden_size=cfg["hidden_size"],
                   layers=cfg["num_hidden_layers"], vocab_size=cfg["vocab_size"], dtype=str(dtype).replace("torch.", "")),
        measurements=results.measurements,
        errors=results.errors,
    )
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
