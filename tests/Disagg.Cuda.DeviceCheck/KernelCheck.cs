using System.Diagnostics;
using Disagg.Cuda.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.DeviceCheck;

/// <summary>
/// libdisagg_cuda's kernels alone against plain torch ops, with the time per launch (back to back, launch overhead
/// included: ncu gives a kernel's own time):
///   Disagg.Cuda.DeviceCheck --kernel-check [--out report.json]
/// The paged-attention kernel against attention written in plain float32 torch ops (gather each sequence's keys
/// and values through its block table, softmax, weighted sum), over shapes, dtypes, context lengths (empty, one key,
/// either side of a pass and of a chunk, thousands), partition counts and sliding windows. The thin linear kernel
/// (plain and gated) against F.linear (+ silu * up) on real model shapes, timed beside F.linear (cuBLAS) in the same run.
/// The qkv projection with the rotary embedding and cache write in its epilogue against the two kernels it replaces
/// (linear, then rope_store_kv): the same bits in the output and the cache, timed beside them.
/// Prompt attention on FlashAttention-2 (chunks after a cached prefix, grouped heads, sliding windows, sequences packed
/// in one call) against float32 attention with an explicit mask, timed beside what the model ran before it: SDPA on 4-D
/// inputs with a boolean mask (its memory-efficient kernel) after repeat_interleave of the KV heads.
/// </summary>
internal static class KernelCheck
{
    private sealed record Case(string Label, ScalarType Type, int Heads, int KvHeads, int Dim, int Window, int Partitions, int[] Contexts);

    private const int BlockSize = 16;

    public static (List<object> Rows, int Failures) Run()
    {
        if (!NativeCuda.IsAvailable) throw new InvalidOperationException($"libdisagg_cuda is not loaded: {NativeCuda.LoadError}");
        var (rows, failures) = RunAttention();
        var (linearRows, linearFailures) = RunLinear();
        var (ropeRows, ropeFailures) = RunLinearRope();
        var (promptRows, promptFailures) = RunPromptAttention();
        rows.AddRange(linearRows);
        rows.AddRange(ropeRows);
        rows.AddRange(promptRows);
        return (rows, failures + linearFailures + ropeFailures + promptFailures);
    }

    private static (List<object> Rows, int Failures) RunAttention()
    {
        var cases = new List<Case>();
        int[][] shortContexts = [[1], [15], [16], [17], [255], [256], [257], [513]];
        foreach (int partitions in new[] { 1, 32 })
            foreach (var contexts in shortContexts)
                cases.Add(new("llama3-8b", ScalarType.BFloat16, 32, 8, 128, 0, partitions, contexts));
        foreach (int partitions in new[] { 1, 2, 64 })
            cases.Add(new("qwen2.5-0.5b", ScalarType.BFloat16, 14, 2, 64, 0, partitions, [0, 1, 300, 1025, 4000]));
        // Batch 1 at the benchmark's context, split as DecodeBuffers splits it.
        cases.Add(new("qwen2.5-0.5b batch 1", ScalarType.BFloat16, 14, 2, 64, 0, 64, [512]));
        cases.Add(new("llama3-8b batch 1", ScalarType.BFloat16, 32, 8, 128, 0, 32, [512]));
        cases.Add(new("llama3-8b batch 64", ScalarType.BFloat16, 32, 8, 128, 0, 1, [.. Enumerable.Range(0, 64).Select(i => 1800 + 17 * i)]));
        cases.Add(new("llama3-8b batch 64", ScalarType.BFloat16, 32, 8, 128, 0, 4, [.. Enumerable.Range(0, 64).Select(i => 1800 + 17 * i)]));
        cases.Add(new("16 groups, dim 256", ScalarType.Float32, 16, 1, 256, 0, 1, [700, 3]));
        cases.Add(new("16 groups, dim 256", ScalarType.Float32, 16, 1, 256, 0, 7, [700, 3]));
        cases.Add(new("mha dim 32", ScalarType.Float16, 4, 4, 32, 0, 1, [5, 33, 257]));
        cases.Add(new("mha dim 32", ScalarType.Float16, 4, 4, 32, 0, 3, [5, 33, 257]));
        cases.Add(new("groups 3 dim 96", ScalarType.Float32, 6, 2, 96, 0, 5, [40, 600]));
        cases.Add(new("sliding window 100", ScalarType.BFloat16, 8, 2, 64, 100, 1, [50, 300, 101]));
        cases.Add(new("sliding window 100", ScalarType.BFloat16, 8, 2, 64, 100, 8, [50, 300, 101]));

        var rows = new List<object>();
        int failures = 0;
        torch.manual_seed(11);
        foreach (var c in cases)
        {
            using var scope = torch.NewDisposeScope();
            Console.Error.WriteLine($"checking {c.Label} {c.Type} partitions {c.Partitions} contexts {string.Join(',', c.Contexts.Take(8))}");
            var (error, tolerance, microseconds) = Check(c);
            bool ok = error <= tolerance;
            if (!ok) failures++;
            var row = new
            {
                check = "paged_attention", shape = c.Label, dtype = c.Type.ToString(), heads = c.Heads, kv_heads = c.KvHeads, dim = c.Dim,
                window = c.Window, partitions = c.Partitions, batch = c.Contexts.Length,
                contexts = c.Contexts.Length <= 8 ? string.Join(',', c.Contexts) : $"{c.Contexts.Min()}..{c.Contexts.Max()}",
                max_abs_error = error, tolerance, ok, us_per_launch = microseconds,
            };
            Record(rows, row);
        }
        return (rows, failures);
    }

    private static (double Error, double Tolerance, double Microseconds) Check(Case c)
    {
        var device = torch.CUDA;
        int batch = c.Contexts.Length, groups = c.Heads / c.KvHeads;
        int maxBlocks = c.Contexts.Max() / BlockSize + 1;
        int blocks = batch * maxBlocks + 3;
        var keys = torch.randn([blocks * BlockSize, c.KvHeads, c.Dim], c.Type, device);
        var values = torch.randn([blocks * BlockSize, c.KvHeads, c.Dim], c.Type, device);
        // Each sequence's blocks are scattered over the pool, as the allocator leaves them after some churn.
        var tables = torch.randperm(blocks, ScalarType.Int32).narrow(0, 0, batch * maxBlocks).view(batch, maxBlocks).to(device);
        var contexts = torch.tensor(c.Contexts, ScalarType.Int32, device);
        // q inside a fused qkv row, as the model passes it: the row stride is longer than the query heads.
        var qkv = torch.randn([batch, (c.Heads + 2 * c.KvHeads) * c.Dim], c.Type, device);
        var output = torch.zeros([batch, c.Heads * c.Dim], c.Type, device);
        var workspace = c.Partitions > 1 ? torch.zeros([NativeCuda.AttentionWorkspaceLength(batch, c.Heads, c.Dim, c.Partitions)], ScalarType.Float32, device) : null;
        var counters = c.Partitions > 1 ? torch.zeros([batch * c.KvHeads], ScalarType.Int32, device) : null;
        double scale = 1.0 / Math.Sqrt(c.Dim);
        void Launch() => NativeCuda.PagedAttention(output, qkv, keys, values, tables, contexts, workspace, counters, c.Heads, c.KvHeads, BlockSize, c.Window, c.Partitions, scale);
        Launch();
        torch.cuda.synchronize();

        var expected = torch.zeros([batch, c.Heads, c.Dim], ScalarType.Float32);
        var tablesHost = tables.cpu();
        for (int b = 0; b < batch; b++)
        {
            int first = c.Window > 0 ? Math.Max(0, c.Contexts[b] - c.Window) : 0;
            int n = c.Contexts[b] - first;
            if (n == 0) continue;
            var positions = torch.arange(first, c.Contexts[b], ScalarType.Int64);
            var slotIds = tablesHost[b].to(ScalarType.Int64).index_select(0, positions.div(BlockSize, RoundingMode.floor)) * BlockSize + positions % BlockSize;
            var k = keys.index_select(0, slotIds.to(device)).to(ScalarType.Float32).repeat_interleave(groups, 1); // [n, heads, dim]
            var v = values.index_select(0, slotIds.to(device)).to(ScalarType.Float32).repeat_interleave(groups, 1);
            var q = qkv[b].narrow(0, 0, c.Heads * c.Dim).to(ScalarType.Float32).view(c.Heads, c.Dim) * scale;
            var weights = torch.einsum("nhd,hd->hn", k, q).softmax(-1);
            expected[b] = torch.einsum("hn,nhd->hd", weights, v).cpu();
        }
        double error = (output.to(ScalarType.Float32).cpu().view(batch, c.Heads, c.Dim) - expected).abs().max().item<float>();
        double tolerance = AttentionTolerance(c.Type);

        return (error, tolerance, Time(Launch));
    }

    private sealed record LinearCase(string Label, ScalarType Type, int Rows, int Out, int In, bool Bias, bool Gated, bool Norm = false, bool Accumulate = false);

    private static (List<object> Rows, int Failures) RunLinear()
    {
        var cases = new List<LinearCase>();
        foreach (int m in new[] { 1, 4 })
        {
            cases.Add(new("llama3-8b qkv", ScalarType.BFloat16, m, 6144, 4096, false, false));
            cases.Add(new("llama3-8b o", ScalarType.BFloat16, m, 4096, 4096, false, false));
            cases.Add(new("llama3-8b gate_up+silu", ScalarType.BFloat16, m, 14336, 4096, false, true));
            cases.Add(new("llama3-8b down", ScalarType.BFloat16, m, 4096, 14336, false, false));
            cases.Add(new("llama3-8b lm_head", ScalarType.BFloat16, m, 128256, 4096, false, false));
            cases.Add(new("qwen2.5-0.5b qkv+bias", ScalarType.BFloat16, m, 1152, 896, true, false));
            cases.Add(new("qwen2.5-0.5b gate_up+silu", ScalarType.BFloat16, m, 4864, 896, false, true));
            cases.Add(new("qwen2.5-0.5b down", ScalarType.BFloat16, m, 896, 4864, false, false));
        }
        foreach (int m in new[] { 1, 3 })
        {
            cases.Add(new("qwen2.5-0.5b norm+qkv+bias", ScalarType.BFloat16, m, 1152, 896, true, false, Norm: true));
            cases.Add(new("qwen2.5-0.5b x += o", ScalarType.BFloat16, m, 896, 896, false, false, Accumulate: true));
            cases.Add(new("qwen2.5-0.5b norm+gate_up+silu", ScalarType.BFloat16, m, 4864, 896, false, true, Norm: true));
            cases.Add(new("llama3-8b norm+gate_up+silu", ScalarType.BFloat16, m, 14336, 4096, false, true, Norm: true));
            cases.Add(new("llama3-8b x += down", ScalarType.BFloat16, m, 4096, 14336, false, false, Accumulate: true));
        }
        cases.Add(new("llama3-8b norm+lm_head", ScalarType.BFloat16, 1, 128256, 4096, false, false, Norm: true));
        cases.Add(new("float32 norm+bias", ScalarType.Float32, 2, 300, 264, true, false, Norm: true));
        cases.Add(new("float32 x += ", ScalarType.Float32, 4, 300, 264, true, false, Accumulate: true));
        cases.Add(new("float16 norm+gated+bias", ScalarType.Float16, 2, 300, 264, true, true, Norm: true));
        cases.Add(new("odd rows, gated, bias", ScalarType.BFloat16, 3, 40, 24, true, true));
        cases.Add(new("float16", ScalarType.Float16, 2, 1000, 520, true, false));
        cases.Add(new("float16 gated", ScalarType.Float16, 2, 1000, 520, true, true));
        cases.Add(new("float32", ScalarType.Float32, 3, 700, 1032, true, false));
        cases.Add(new("float32 gated", ScalarType.Float32, 1, 700, 1032, false, true));

        var rows = new List<object>();
        int failures = 0;
        foreach (var c in cases)
        {
            using var scope = torch.NewDisposeScope();
            Console.Error.WriteLine($"checking linear {c.Label} {c.Type} rows {c.Rows}");
            var device = torch.CUDA;
            int weightRows = c.Gated ? 2 * c.Out : c.Out;
            var x = torch.randn([c.Rows, c.In], c.Type, device);
            var weight = (torch.randn([weightRows, c.In], ScalarType.Float32, device) / Math.Sqrt(c.In)).to(c.Type);
            var bias = c.Bias ? torch.randn([weightRows], c.Type, device) : null;
            var norm = c.Norm ? (1 + 0.1 * torch.randn([c.In], ScalarType.Float32, device)).to(c.Type) : null;
            const double eps = 1e-6;
            // Accumulate adds into a residual stream: the check runs on a copy, so that the timed launches below can add freely.
            var residual = torch.randn([c.Rows, c.Out], c.Type, device);
            var output = c.Accumulate ? residual.clone() : torch.zeros([c.Rows, c.Out], c.Type, device);
            Tensor Reference()
            {
                var input = x;
                if (norm is not null) // as the rms_norm kernel and the TorchSharp path round: weight * round(x * rsqrt(mean(x^2) + eps))
                {
                    var x32 = x.to(ScalarType.Float32);
                    input = norm * (x32 * (x32.pow(2).mean([-1], keepdim: true) + eps).rsqrt()).to(c.Type);
                }
                var y = torch.nn.functional.linear(input, weight, bias);
                if (c.Gated) y = torch.nn.functional.silu(y.narrow(1, 0, c.Out)) * y.narrow(1, c.Out, c.Out);
                return c.Accumulate ? residual + y : y;
            }
            void Native() => NativeCuda.Linear(output, x, weight, bias, norm, eps, c.Gated, c.Accumulate);
            Native();
            var expected = Reference();
            double error = (output.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs().max().item<float>();
            // One rounding step of the output type either way (the sums differ in order), on values of a few units.
            double tolerance = c.Type switch { ScalarType.BFloat16 => 6e-2, ScalarType.Float16 => 8e-3, _ => 2e-4 };
            bool ok = error <= tolerance;
            if (!ok) failures++;
            double nativeUs = Time(Native), cublasUs = Time(() => Reference());
            double weightGigabytes = (double)weightRows * c.In * weight.element_size() / 1e9;
            var row = new
            {
                check = "linear", shape = c.Label, dtype = c.Type.ToString(), rows = c.Rows, n = c.Out, k = c.In, bias = c.Bias, gated = c.Gated,
                norm = c.Norm, accumulate = c.Accumulate,
                max_abs_error = error, tolerance, ok, native_us_per_launch = nativeUs, torch_us_per_launch = cublasUs,
                native_weight_gb_per_s = weightGigabytes / (nativeUs * 1e-6), torch_weight_gb_per_s = weightGigabytes / (cublasUs * 1e-6),
            };
            Record(rows, row);
        }
        return (rows, failures);
    }

    private sealed record RopeCase(string Label, ScalarType Type, int Rows, int Heads, int KvHeads, int Dim, int Hidden, bool Bias, bool Norm);

    private static (List<object> Rows, int Failures) RunLinearRope()
    {
        RopeCase[] cases =
        [
            new("qwen2.5-0.5b", ScalarType.BFloat16, 1, 14, 2, 64, 896, true, true),
            new("qwen2.5-0.5b", ScalarType.BFloat16, 3, 14, 2, 64, 896, true, true),
            new("llama3-8b", ScalarType.BFloat16, 1, 32, 8, 128, 4096, false, true),
            new("llama3-8b", ScalarType.BFloat16, 4, 32, 8, 128, 4096, false, true),
            new("float16 no norm", ScalarType.Float16, 2, 6, 2, 32, 264, true, false),
            new("float32 mha", ScalarType.Float32, 3, 4, 4, 32, 128, true, true),
        ];
        var rows = new List<object>();
        int failures = 0;
        const int Slots = 64, Positions = 4096;
        foreach (var c in cases)
        {
            using var scope = torch.NewDisposeScope();
            Console.Error.WriteLine($"checking linear+rope {c.Label} {c.Type} rows {c.Rows}");
            var device = torch.CUDA;
            int width = (c.Heads + 2 * c.KvHeads) * c.Dim;
            var x = torch.randn([c.Rows, c.Hidden], c.Type, device);
            var weight = (torch.randn([width, c.Hidden], ScalarType.Float32, device) / Math.Sqrt(c.Hidden)).to(c.Type);
            var bias = c.Bias ? torch.randn([width], c.Type, device) : null;
            var norm = c.Norm ? (1 + 0.1 * torch.randn([c.Hidden], ScalarType.Float32, device)).to(c.Type) : null;
            var angles = torch.randn([Positions, c.Dim], ScalarType.Float32, device) * 3;
            var (cos, sin) = (angles.cos(), angles.sin());
            var positions = torch.randint(0, Positions, [c.Rows], ScalarType.Int32, device: device);
            // Distinct slots; the last row is padding (slot -1) when there are several, as a bucketed step pads.
            var slotList = torch.randperm(Slots, ScalarType.Int32).narrow(0, 0, c.Rows).clone();
            if (c.Rows > 1) slotList[c.Rows - 1] = -1;
            var slots = slotList.to(device);
            var (keys, values) = (torch.zeros([Slots, c.KvHeads, c.Dim], c.Type, device), torch.zeros([Slots, c.KvHeads, c.Dim], c.Type, device));
            var (expectedKeys, expectedValues) = (keys.clone(), values.clone());
            var fused = torch.zeros([c.Rows, width], c.Type, device);
            var expected = torch.zeros([c.Rows, width], c.Type, device);
            void Fused() => NativeCuda.LinearRopeKv(fused, x, weight, bias, norm, 1e-6, positions, slots, cos, sin, keys, values, c.Heads, c.KvHeads);
            void Separate()
            {
                NativeCuda.Linear(expected, x, weight, bias, norm, 1e-6);
                NativeCuda.RopeStoreKv(expected, positions, slots, cos, sin, expectedKeys, expectedValues, c.Heads, c.KvHeads);
            }
            Fused();
            Separate();
            double Difference(Tensor a, Tensor b) => (a.to(ScalarType.Float32) - b.to(ScalarType.Float32)).abs().max().item<float>();
            double error = Math.Max(Difference(fused, expected), Math.Max(Difference(keys, expectedKeys), Difference(values, expectedValues)));
            bool stored = keys.count_nonzero().item<long>() > 0 && values.count_nonzero().item<long>() > 0;
            bool ok = error == 0 && stored; // the same arithmetic in the same order: the same bits
            if (!ok) failures++;
            var row = new
            {
                check = "linear_rope_kv", shape = c.Label, dtype = c.Type.ToString(), rows = c.Rows, heads = c.Heads, kv_heads = c.KvHeads, dim = c.Dim,
                bias = c.Bias, norm = c.Norm, max_abs_difference = error, cache_written = stored, ok,
                fused_us_per_launch = Time(Fused), separate_us_per_launch = Time(Separate),
            };
            Record(rows, row);
        }
        return (rows, failures);
    }

    /// <summary>One prompt-attention case: sequences of (cached prefix, new queries), packed in one call.</summary>
    private sealed record PromptCase(string Label, ScalarType Type, int Heads, int KvHeads, int Dim, int Window, (int Prefix, int Queries)[] Sequences);

    private static (List<object> Rows, int Failures) RunPromptAttention()
    {
        PromptCase[] cases =
        [
            new("llama3-8b, 2,048 queries after 6,144", ScalarType.BFloat16, 32, 8, 128, 0, [(6144, 2048)]),
            new("llama3-8b, 333 queries after 100", ScalarType.BFloat16, 32, 8, 128, 0, [(100, 333)]),
            new("llama3-8b, fresh 77", ScalarType.BFloat16, 32, 8, 128, 0, [(0, 77)]),
            new("qwen2.5-0.5b, 513 after 1,000", ScalarType.BFloat16, 14, 2, 64, 0, [(1000, 513)]),
            new("qwen2.5-0.5b, 2,048 after 6,144", ScalarType.BFloat16, 14, 2, 64, 0, [(6144, 2048)]),
            new("qwen2.5-0.5b, 512 after 7,680", ScalarType.BFloat16, 14, 2, 64, 0, [(7680, 512)]),
            new("llama3-8b, 512 after 7,680", ScalarType.BFloat16, 32, 8, 128, 0, [(7680, 512)]),
            new("mha dim 32 fp16", ScalarType.Float16, 4, 4, 32, 0, [(17, 40)]),
            new("sliding window 100", ScalarType.BFloat16, 8, 2, 64, 100, [(300, 64)]),
            new("sliding window 100, chunk longer than it", ScalarType.BFloat16, 8, 2, 64, 100, [(50, 250)]),
            new("three sequences packed", ScalarType.BFloat16, 14, 2, 64, 0, [(50, 30), (0, 20), (777, 129)]),
        ];
        var rows = new List<object>();
        int failures = 0;
        torch.manual_seed(13);
        foreach (var c in cases)
        {
            using var scope = torch.NewDisposeScope();
            Console.Error.WriteLine($"checking prompt attention {c.Label}");
            var (error, packedError, tolerance, flashUs, packedUs, sdpaUs) = CheckPrompt(c);
            bool ok = error <= tolerance && packedError <= tolerance;
            if (!ok) failures++;
            var row = new
            {
                check = "prompt_attention", shape = c.Label, dtype = c.Type.ToString(), heads = c.Heads, kv_heads = c.KvHeads, dim = c.Dim,
                window = c.Window, sequences = string.Join(' ', c.Sequences.Select(q => $"{q.Queries}@{q.Prefix}")),
                max_abs_error = error, packed_max_abs_error = packedError, tolerance, ok, us_per_launch = flashUs,
                packed_us_per_launch = packedUs, sdpa_masked_us_per_launch = sdpaUs,
            };
            Record(rows, row);
        }
        return (rows, failures);
    }

    /// <summary>The call in both of its forms, each against float32 masked attention: without <c>packed</c> (a single sequence
    /// runs FlashAttention's fixed-length form, which may split the keys among CTAs) and with it (the packed form); the model
    /// picks one per chunk (<see cref="Model.LlamaModel.PacksPromptChunk"/>). Several sequences take the packed form either way.</summary>
    private static (double Error, double PackedError, double Tolerance, double FlashMicroseconds, double PackedMicroseconds, double SdpaMicroseconds)
        CheckPrompt(PromptCase c)
    {
        var device = torch.CUDA;
        int groups = c.Heads / c.KvHeads;
        int totalQ = c.Sequences.Sum(s => s.Queries), totalK = c.Sequences.Sum(s => s.Prefix + s.Queries);
        var q = torch.randn([totalQ, c.Heads, c.Dim], c.Type, device);
        var k = torch.randn([totalK, c.KvHeads, c.Dim], c.Type, device);
        var v = torch.randn([totalK, c.KvHeads, c.Dim], c.Type, device);
        var cuQ = new List<int> { 0 };
        var cuK = new List<int> { 0 };
        foreach (var (prefix, queries) in c.Sequences)
        {
            cuQ.Add(cuQ[^1] + queries);
            cuK.Add(cuK[^1] + prefix + queries);
        }
        var cuQTensor = torch.tensor(cuQ.ToArray(), ScalarType.Int32).to(device);
        var cuKTensor = torch.tensor(cuK.ToArray(), ScalarType.Int32).to(device);
        int maxQ = c.Sequences.Max(s => s.Queries), maxK = c.Sequences.Max(s => s.Prefix + s.Queries);
        var output = torch.empty([totalQ, c.Heads, c.Dim], c.Type, device);
        double scale = 1.0 / Math.Sqrt(c.Dim);
        void Flash() => NativeCuda.PromptAttention(output, q, k, v, cuQTensor, cuKTensor, maxQ, maxK, c.Window, scale, packed: false);
        var packedOutput = torch.empty([totalQ, c.Heads, c.Dim], c.Type, device);
        void Packed() => NativeCuda.PromptAttention(packedOutput, q, k, v, cuQTensor, cuKTensor, maxQ, maxK, c.Window, scale, packed: true);
        Flash();
        Packed();
        torch.cuda.synchronize();

        var expected = torch.empty([totalQ, c.Heads, c.Dim], ScalarType.Float32, device);
        var masks = new List<Tensor>();
        for (int i = 0; i < c.Sequences.Length; i++)
        {
            var (prefix, queries) = c.Sequences[i];
            int length = prefix + queries;
            var qs = q.narrow(0, cuQ[i], queries).to(ScalarType.Float32).transpose(0, 1);                          // [heads, n, d]
            var ks = k.narrow(0, cuK[i], length).to(ScalarType.Float32).repeat_interleave(groups, 1).transpose(0, 1); // [heads, L, d]
            var vs = v.narrow(0, cuK[i], length).to(ScalarType.Float32).repeat_interleave(groups, 1).transpose(0, 1);
            var queryPositions = torch.arange(prefix, length, ScalarType.Int64, device).unsqueeze(1);
            var keyPositions = torch.arange(0, length, ScalarType.Int64, device).unsqueeze(0);
            var allowed = keyPositions <= queryPositions;
            if (c.Window > 0) allowed = allowed & (keyPositions > queryPositions - c.Window);
            masks.Add(allowed);
            var scores = torch.matmul(qs, ks.transpose(1, 2)) * scale;
            scores = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity).softmax(-1);
            expected.narrow(0, cuQ[i], queries).copy_(torch.matmul(scores, vs).transpose(0, 1));
        }
        double error = (output.to(ScalarType.Float32) - expected).abs().max().item<float>();
        double packedError = (packedOutput.to(ScalarType.Float32) - expected).abs().max().item<float>();
        double tolerance = AttentionTolerance(c.Type);

        // What LlamaModel ran for such a chunk before: per sequence, the KV heads repeated, SDPA on 4-D inputs with the mask.
        void Sdpa()
        {
            for (int i = 0; i < c.Sequences.Length; i++)
            {
                var (prefix, queries) = c.Sequences[i];
                int length = prefix + queries;
                var qs = q.narrow(0, cuQ[i], queries).transpose(0, 1).unsqueeze(0);
                var ks = k.narrow(0, cuK[i], length).transpose(0, 1).repeat_interleave(groups, 0).unsqueeze(0);
                var vs = v.narrow(0, cuK[i], length).transpose(0, 1).repeat_interleave(groups, 0).unsqueeze(0);
                _ = torch.nn.functional.scaled_dot_product_attention(qs, ks, vs, masks[i]);
            }
        }
        return (error, packedError, tolerance, Time(Flash), Time(Packed), Time(Sdpa));
    }

    /// <summary>Adds a check's row to the report and prints it as it comes.</summary>
    private static void Record(List<object> rows, object row)
    {
        rows.Add(row);
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
    }

    /// <summary>An attention output against float32: its own rounding dominates, half an ulp of values up to ~4 in bf16 /
    /// fp16; float32 differs only in summation order and __expf.</summary>
    private static double AttentionTolerance(ScalarType type) => type switch { ScalarType.BFloat16 => 2e-2, ScalarType.Float16 => 3e-3, _ => 1e-4 };

    private static double Time(Action launch)
    {
        const int launches = 100;
        launch();
        torch.cuda.synchronize();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < launches; i++)
        {
            using var scope = torch.NewDisposeScope();
            launch();
        }
        torch.cuda.synchronize();
        return clock.Elapsed.TotalMilliseconds * 1000 / launches;
    }
}
