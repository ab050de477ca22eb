using System.Diagnostics;
using Disagg.Cuda.Native;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Disagg.Cuda.DeviceCheck;

/// <summary>
/// What the host pays to issue each op of a native prompt step (LlamaModel.ForwardNative), on Qwen2.5-0.5B's shapes in
/// bfloat16: per op, the host time per call with nothing waited for (the GPU runs behind) and the time per call once the
/// device has finished, so a host-bound op shows host ≈ total. A step is host-bound when the sum of its ops' host times
/// exceeds their device time:
///   Disagg.Cuda.DeviceCheck --op-costs [--tokens 512,2048] [--out F]
/// </summary>
internal static class OpCosts
{
    private const int Hidden = 896, Heads = 14, KvHeads = 2, HeadDim = 64, Intermediate = 4864, Context = 8192;

    public static List<object> Run(int[] tokenCounts)
    {
        var rows = new List<object>();
        var device = torch.CUDA;
        var dtype = ScalarType.BFloat16;
        int qkvWidth = (Heads + 2 * KvHeads) * HeadDim;
        using var wQkv = torch.randn([qkvWidth, Hidden], dtype, device) * 0.02;
        using var bQkv = torch.randn([qkvWidth], dtype, device) * 0.02;
        using var wO = torch.randn([Hidden, Heads * HeadDim], dtype, device) * 0.02;
        using var wGateUp = torch.randn([2 * Intermediate, Hidden], dtype, device) * 0.02;
        using var wDown = torch.randn([Hidden, Intermediate], dtype, device) * 0.02;
        using var norm = torch.ones([Hidden], dtype, device);
        using var cos = torch.randn([Context, HeadDim], ScalarType.Float32, device);
        using var sin = torch.randn([Context, HeadDim], ScalarType.Float32, device);
        using var keys = torch.randn([Context + 64, KvHeads, HeadDim], dtype, device);
        using var values = torch.randn([Context + 64, KvHeads, HeadDim], dtype, device);
        foreach (int tokens in tokenCounts)
        {
            int start = Context - tokens;
            using var x = torch.randn([tokens, Hidden], dtype, device);
            using var normed = torch.empty_like(x);
            using var qkv = F.linear(x, wQkv, bQkv);
            using var positions = torch.arange(start, Context, ScalarType.Int32, device);
            using var slots = torch.arange(start, Context, ScalarType.Int32, device);
            using var attention = torch.randn([tokens, Heads * HeadDim], dtype, device);
            using var gateUp = F.linear(x, wGateUp);
            using var activation = torch.empty([tokens, Intermediate], dtype, device);
            using var contextSlots = torch.arange(0, Context, ScalarType.Int64, device);
            using var lengths = torch.tensor(new[] { 0, tokens, 0, Context }, device: device);
            long[] hostSlots = new long[Context];
            // As LlamaModel.FlashChunkAttention runs it: the context's keys and values gathered, then flash attention.
            Tensor Attention(Tensor q)
            {
                var kc = keys.index_select(0, contextSlots);
                var vc = values.index_select(0, contextSlots);
                var o = torch.empty([tokens, Heads, HeadDim], dtype, device);
                NativeCuda.PromptAttention(o, q, kc, vc, lengths.narrow(0, 0, 2), lengths.narrow(0, 2, 2), tokens, Context, 0, 0.125,
                    Model.LlamaModel.PacksPromptChunk(tokens, Context, 0));
                return o;
            }
            var ops = new (string Name, Action Op)[]
            {
                ("linear_qkv_bias", () => F.linear(normed, wQkv, bQkv)),
                ("linear_gate_up", () => F.linear(normed, wGateUp)),
                ("linear_down", () => F.linear(activation, wDown)),
                ("rms_norm_residual", () => NativeCuda.RmsNorm(normed, x, x, norm, 1e-6)),
                ("rope_store_kv", () => NativeCuda.RopeStoreKv(qkv, positions, slots, cos, sin, keys, values, Heads, KvHeads)),
                ("silu_mul", () => NativeCuda.SiluMul(activation, gateUp)),
                ("empty", () => torch.empty([tokens, Intermediate], dtype, device)),
                ("split_heads", () =>
                {
                    qkv.narrow(1, 0, Heads * HeadDim).view(tokens, Heads, HeadDim);
                    qkv.narrow(1, Heads * HeadDim, KvHeads * HeadDim).view(tokens, KvHeads, HeadDim);
                    qkv.narrow(1, (Heads + KvHeads) * HeadDim, KvHeads * HeadDim).view(tokens, KvHeads, HeadDim);
                }),
                ("index_select_context", () => keys.index_select(0, contextSlots)),
                ("prompt_attention", () => Attention(qkv.narrow(1, 0, Heads * HeadDim).view(tokens, Heads, HeadDim))),
                ("upload_context_slots", () => torch.tensor(hostSlots, device: device)),
                ("layer", () =>
                {
                    var h = F.linear(normed, wQkv, bQkv);
                    var q = h.narrow(1, 0, Heads * HeadDim).view(tokens, Heads, HeadDim);
                    h.narrow(1, Heads * HeadDim, KvHeads * HeadDim).view(tokens, KvHeads, HeadDim);
                    h.narrow(1, (Heads + KvHeads) * HeadDim, KvHeads * HeadDim).view(tokens, KvHeads, HeadDim);
                    NativeCuda.RopeStoreKv(h, positions, slots, cos, sin, keys, values, Heads, KvHeads);
                    var o = Attention(q);
                    NativeCuda.RmsNorm(normed, F.linear(o.view(tokens, Heads * HeadDim), wO), x, norm, 1e-6);
                    var gu = F.linear(normed, wGateUp);
                    var act = torch.empty([tokens, Intermediate], dtype, device);
                    NativeCuda.SiluMul(act, gu);
                    NativeCuda.RmsNorm(normed, F.linear(act, wDown), x, norm, 1e-6);
                }),
            };
            foreach (var (name, op) in ops)
            {
                const int calls = 200;
                for (int i = 0; i < 20; i++) { using var warm = torch.NewDisposeScope(); op(); }
                torch.cuda.synchronize();
                var host = new List<double>();
                var total = new List<double>();
                for (int rep = 0; rep < 3; rep++)
                {
                    var clock = Stopwatch.StartNew();
                    for (int i = 0; i < calls; i++) { using var scope = torch.NewDisposeScope(); op(); }
                    host.Add(clock.Elapsed.TotalMicroseconds / calls);
                    torch.cuda.synchronize();
                    total.Add(clock.Elapsed.TotalMicroseconds / calls);
                }
                host.Sort();
                total.Sort();
                var row = new { check = "op_cost", tokens, op = name, host_us_per_call = host[1], total_us_per_call = total[1] };
                rows.Add(row);
                Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(row));
            }
        }
        return rows;
    }
}
