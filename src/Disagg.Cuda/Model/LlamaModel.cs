using Disagg.Cuda.Loading;
using Disagg.Cuda.Native;
using Disagg.Kv;
using Disagg.Scheduling;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Disagg.Cuda.Model;

/// <summary>
/// The Llama-family forward pass (Llama 2/3, Qwen2/2.5, Qwen3, Mistral) over a paged KV cache, in plain TorchSharp ops.
/// One call runs one continuous-batching step: every chunk's tokens are flattened into one [tokens, hidden] activation,
/// their K/V are written to their cache slots, and each chunk attends over its own sequence's cached positions.
/// </summary>
internal sealed class LlamaModel : IDisposable
{
    private readonly ModelConfig _config;
    private readonly LlamaWeights _weights;
    private readonly RotaryEmbedding _rope;
    private readonly PagedKvCache _cache;
    private readonly Device _device;
    private readonly int _heads, _kvHeads, _headDim;
    private readonly double _eps;

    public LlamaModel(ModelConfig config, LlamaWeights weights, PagedKvCache cache, int maxPositions, Device device)
    {
        _config = config;
        _weights = weights;
        _cache = cache;
        _device = device;
        _heads = config.NumAttentionHeads;
        _kvHeads = config.NumKeyValueHeads;
        _headDim = config.HeadDim;
        _eps = config.RmsNormEps;
        _rope = new RotaryEmbedding(config.Rope, _headDim, maxPositions, device);
    }

    public PagedKvCache Cache => _cache;

    public int Heads => _heads;

    public int KvHeads => _kvHeads;

    public int HeadDim => _headDim;

    /// <summary>
    /// Decode steps of at most this many rows run their linear layers on libdisagg_cuda's thin matrix-vector kernel (the
    /// RMSNorm, residual add and activation folded in) instead of cuBLAS; 0: always cuBLAS. For side-by-side measurements
    /// and checks.
    /// </summary>
    internal static int NativeLinearRows { get; set; } = NativeCuda.MaxLinearRows;

    /// <summary>Which form of FlashAttention a prompt chunk after a prefix runs in (see <see cref="NativeCuda.PromptAttention"/>):
    /// true the packed form, false the fixed-length form, null (the default) per chunk by <see cref="PacksPromptChunk"/>.
    /// For DeviceCheck's side-by-side timings (<c>--packed-prompt-attention 1|0|auto</c>).</summary>
    internal static bool? PackedPromptAttention { get; set; }

    /// <summary>
    /// Whether a chunk of <paramref name="queries"/> tokens over <paramref name="context"/> keys runs in the packed form. The
    /// fixed-length form splits the keys among CTAs, which pays when the queries alone leave SMs idle: at eca41e6 on an H100
    /// (DeviceCheck --kernel-check, benchmarks/results) 512 Qwen queries after 7,680 took 73 us fixed against 144 packed, while
    /// chunks with a context under about 8 times their length, and sliding windows, ran faster packed (513 after 1,000: 49
    /// against 36 us). Llama-3-8B's 32 heads fill the GPU either way (231 against 236 us at 512 after 7,680). In the model
    /// (e442d57, an 8,192-token Qwen prompt in 512-token steps) the later steps took 4.1-4.7 ms against 5.5-5.6 packed.
    /// </summary>
    internal static bool PacksPromptChunk(int queries, int context, int window) =>
        PackedPromptAttention ?? (window > 0 || context < 8 * queries);

    /// <summary>
    /// True when the fused decode kernels can run this model: CUDA, libdisagg_cuda present, and attention shapes its paged
    /// attention handles (head dim a multiple of 8 up to 256, at most 16 query heads per KV head).
    /// </summary>
    public bool SupportsFusedDecode =>
        _device.type == DeviceType.CUDA && _headDim % 8 == 0 && _headDim <= 256 && _heads / _kvHeads <= 16 && NativeCuda.IsAvailable;

    /// <summary>True when prompt chunks can run attention on FlashAttention-2 through libdisagg_cuda: CUDA, bfloat16 or float16,
    /// a head dim a multiple of 8 up to 256.</summary>
    public bool SupportsFlashPromptAttention =>
        _device.type == DeviceType.CUDA && _cache.Layout.DataType != KvDataType.Float32 && _headDim % 8 == 0 && _headDim <= 256 && NativeCuda.IsAvailable;

    /// <summary>Whether prompt chunks after a cached prefix (or in a sliding window) use <see cref="NativeCuda.PromptAttention"/>
    /// instead of SDPA with an explicit mask (set at load where <see cref="SupportsFlashPromptAttention"/>).</summary>
    public bool FlashPromptAttention { get; set; }

    /// <summary>Whether steps that <see cref="Forward"/> runs (prompt chunks, and decode rows the fused decode path does not
    /// take) use libdisagg_cuda's RMSNorm (with the residual add), rotary + KV write and SiLU-mul kernels between cuBLAS's
    /// linear layers: about 12 launches per layer instead of about 60 TorchSharp ops, which on a small model is what bounds
    /// a prompt step. The kernels round where the TorchSharp ops round (set at load where <see cref="SupportsFusedDecode"/>).</summary>
    public bool NativePrefill { get; set; }

    /// <summary>
    /// Runs the step's <paramref name="chunks"/> (a whole batch, or a sub-batch of it: a split mixed step runs its prompt
    /// chunks here and its decode rows on the fused path) and returns float32 logits [samplingChunks, vocab] for the last
    /// position of each chunk that samples, in chunk order. <paramref name="layerIssued"/> hears of each layer once its
    /// work (its KV writes included) is issued.
    /// </summary>
    public Tensor Forward(ReadOnlySpan<ScheduledChunk> chunks, Action<int>? layerIssued = null)
    {
        using var scope = torch.NewDisposeScope();
        var step = StepTensors.Build(chunks, _cache.Layout.BlockSize, _config.SlidingWindow, _device, int32Indices: NativePrefill,
            sequenceLengths: FlashPromptAttention);
        if (NativePrefill) return ForwardNative(step, layerIssued).MoveToOuterDisposeScope();

        var x = _weights.Embedding.index_select(0, step.TokenIds); // [T, hidden]
        for (int l = 0; l < _weights.Layers.Length; l++)
        {
            using var layerScope = torch.NewDisposeScope();
            x = Layer(l, x, step).MoveToOuterDisposeScope();
            layerIssued?.Invoke(l);
        }
        var last = x.index_select(0, step.SampleRows);
        var logits = F.linear(RmsNorm(last, _weights.FinalNorm), _weights.LanguageModelHead).to(ScalarType.Float32);
        return logits.MoveToOuterDisposeScope();
    }

    /// <summary><see cref="Forward"/> on the native kernels (see <see cref="NativePrefill"/>): x, the residual stream, is updated
    /// in place, and normed holds the next norm of it, as the fused decode path keeps them.</summary>
    private Tensor ForwardNative(StepTensors step, Action<int>? layerIssued)
    {
        var layers = _weights.Layers;
        var x = _weights.Embedding.index_select(0, step.TokenIds); // [T, hidden]
        long tokens = x.shape[0];
        var normed = torch.empty_like(x);
        NativeCuda.RmsNorm(normed, x, null, layers[0].InputNorm, _eps);
        for (int l = 0; l < layers.Length; l++)
        {
            using var layerScope = torch.NewDisposeScope();
            var w = layers[l];
            var qkv = F.linear(normed, w.QkvProjection, w.QkvBias);
            var (q, k, v) = SplitHeads(qkv); // views: the kernels below update qkv in place
            if (w.QueryNorm is not null) NativeCuda.RmsNorm(q, q, null, w.QueryNorm, _eps);
            if (w.KeyNorm is not null) NativeCuda.RmsNorm(k, k, null, w.KeyNorm, _eps);
            // Rotates q and k in place and writes k and v to the cache.
            NativeCuda.RopeStoreKv(qkv, step.Positions, step.Slots, _rope.Cos, _rope.Sin, _cache.Keys(l), _cache.Values(l), _heads, _kvHeads);
            var attention = Attention(l, q, k, v, step);
            NativeCuda.RmsNorm(normed, F.linear(attention, w.OutputProjection, w.OutputBias), x, w.PostAttentionNorm, _eps); // x += o
            var gateUp = F.linear(normed, w.GateUpProjection, w.GateUpBias);
            var activation = torch.empty([tokens, gateUp.shape[1] / 2], x.dtype, _device);
            NativeCuda.SiluMul(activation, gateUp);
            var next = l + 1 < layers.Length ? layers[l + 1].InputNorm : _weights.FinalNorm;
            NativeCuda.RmsNorm(normed, F.linear(activation, w.DownProjection, w.DownBias), x, next, _eps); // x += mlp
            layerIssued?.Invoke(l);
        }
        var last = normed.index_select(0, step.SampleRows); // already FinalNorm(x)
        return F.linear(last, _weights.LanguageModelHead).to(ScalarType.Float32);
    }

    /// <summary>Views of a fused qkv projection [tokens, (heads + 2 kvHeads) * dim] as q [tokens, heads, dim], k and v [tokens, kvHeads, dim].</summary>
    private (Tensor Q, Tensor K, Tensor V) SplitHeads(Tensor qkv)
    {
        long tokens = qkv.shape[0];
        return (qkv.narrow(1, 0, _heads * _headDim).view(tokens, _heads, _headDim),
            qkv.narrow(1, _heads * _headDim, _kvHeads * _headDim).view(tokens, _kvHeads, _headDim),
            qkv.narrow(1, (_heads + _kvHeads) * _headDim, _kvHeads * _headDim).view(tokens, _kvHeads, _headDim));
    }

    private Tensor Layer(int l, Tensor x, StepTensors step)
    {
        var w = _weights.Layers[l];
        var qkv = F.linear(RmsNorm(x, w.InputNorm), w.QkvProjection, w.QkvBias);
        var (q, k, v) = SplitHeads(qkv);
        if (w.QueryNorm is not null) q = RmsNorm(q, w.QueryNorm);
        if (w.KeyNorm is not null) k = RmsNorm(k, w.KeyNorm);
        q = _rope.Apply(q, step.Positions);
        k = _rope.Apply(k, step.Positions);

        _cache.Keys(l).index_copy_(0, step.Slots, k.contiguous());
        _cache.Values(l).index_copy_(0, step.Slots, v.contiguous());

        var attention = Attention(l, q, k, v, step);
        var h = x + F.linear(attention, w.OutputProjection, w.OutputBias);

        var gateUp = F.linear(RmsNorm(h, w.PostAttentionNorm), w.GateUpProjection, w.GateUpBias);
        long intermediate = gateUp.shape[1] / 2;
        var mlp = F.silu(gateUp.narrow(1, 0, intermediate)) * gateUp.narrow(1, intermediate, intermediate);
        return h + F.linear(mlp, w.DownProjection, w.DownBias);
    }

    /// <summary>
    /// Each chunk's queries attend over its sequence's positions [0, End), read from the cache through its slots. Decode
    /// chunks (one query each) are batched into one padded attention call; prompt chunks run one call each.
    /// </summary>
    private Tensor Attention(int l, Tensor q, Tensor k, Tensor v, StepTensors step)
    {
        var keys = _cache.Keys(l);
        var values = _cache.Values(l);
        int groups = _heads / _kvHeads;
        if (step.Decode is null && step.Chunks.Length == 1) return ChunkAttention(q, k, v, keys, values, step.Chunks[0], groups);

        var output = torch.empty([q.shape[0], _heads * _headDim], q.dtype, _device);
        if (step.Decode is { } d)
        {
            long n = d.Rows.shape[0];
            var qd = q.index_select(0, d.Rows).unsqueeze(2);                                          // [n, heads, 1, dim]
            var kd = keys.index_select(0, d.Slots).view(n, d.MaxLength, _kvHeads, _headDim).transpose(1, 2); // [n, kvHeads, L, dim]
            var vd = values.index_select(0, d.Slots).view(n, d.MaxLength, _kvHeads, _headDim).transpose(1, 2);
            if (groups > 1)
            {
                kd = kd.repeat_interleave(groups, 1);
                vd = vd.repeat_interleave(groups, 1);
            }
            var od = F.scaled_dot_product_attention(qd, kd, vd, d.Mask);                              // [n, heads, 1, dim]
            output.index_copy_(0, d.Rows, od.view(n, _heads * _headDim));
        }
        foreach (var chunk in step.Chunks)
        {
            if (chunk.IsBatchedDecode) continue;
            output.narrow(0, chunk.TokenOffset, chunk.Count).copy_(ChunkAttention(q, k, v, keys, values, chunk, groups));
        }
        return output;
    }

    /// <summary>
    /// A prompt chunk's attention. A chunk that starts the sequence (no cached prefix, no window in play) attends over its
    /// own keys with a plain causal mask: SDPA's flash kernel, no gather from the cache. Later chunks read their context
    /// from the cache through its slots, with an explicit mask.
    /// </summary>
    private Tensor ChunkAttention(Tensor q, Tensor k, Tensor v, Tensor keys, Tensor values, in StepChunk chunk, int groups)
    {
        bool fresh = chunk.Start == 0 && chunk.Count > 1 && (_config.SlidingWindow is not { } w || chunk.ContextLength <= w);
        if (!fresh && chunk.Count > 1 && FlashPromptAttention) return FlashChunkAttention(q, keys, values, chunk);
        var qc = q.narrow(0, chunk.TokenOffset, chunk.Count).transpose(0, 1);        // [heads, n, d]
        Tensor kc, vc;
        if (fresh)
        {
            kc = k.narrow(0, chunk.TokenOffset, chunk.Count).transpose(0, 1);        // [kvHeads, n, d]
            vc = v.narrow(0, chunk.TokenOffset, chunk.Count).transpose(0, 1);
        }
        else
        {
            kc = keys.index_select(0, chunk.ContextSlots!).transpose(0, 1);           // [kvHeads, L, d]
            vc = values.index_select(0, chunk.ContextSlots!).transpose(0, 1);
        }
        if (groups > 1)
        {
            kc = kc.repeat_interleave(groups, 0);
            vc = vc.repeat_interleave(groups, 0);
        }
        // 4-D [1, heads, n, d]: SDPA picks its fused kernels only for batched 4-D inputs; 3-D falls back to the math kernel,
        // which materialises the whole score matrix: for a prompt chunk after a cached prefix, n x context floats per head.
        // A fresh chunk gets flash; a masked one (a prefix, a window) the memory-efficient kernel. A single query (a decode
        // row on this path) stays on the math kernel: as cheap there, and it rounds bf16 as the native decode path does.
        var o = chunk.Count > 1
            ? F.scaled_dot_product_attention(qc.unsqueeze(0), kc.unsqueeze(0), vc.unsqueeze(0), fresh ? null : CausalMask(chunk), is_casual: fresh).squeeze(0)
            : F.scaled_dot_product_attention(qc, kc, vc, CausalMask(chunk));         // [heads, n, d]
        return o.transpose(0, 1).reshape(chunk.Count, _heads * _headDim);
    }

    /// <summary>
    /// A prompt chunk after a cached prefix (or one a sliding window cuts) on FlashAttention-2: its context gathered from the
    /// cache through its slots, grouped KV heads as they are, the causal mask aligned to the chunk's last position.
    /// </summary>
    private Tensor FlashChunkAttention(Tensor q, Tensor keys, Tensor values, in StepChunk chunk)
    {
        var qc = q.narrow(0, chunk.TokenOffset, chunk.Count);                        // [n, heads, d]
        var kc = keys.index_select(0, chunk.ContextSlots!);                           // [L, kvHeads, d]
        var vc = values.index_select(0, chunk.ContextSlots!);
        var lengths = chunk.SequenceLengths!;
        var output = torch.empty([chunk.Count, _heads, _headDim], qc.dtype, _device);
        int window = _config.SlidingWindow is { } w && chunk.ContextLength > w ? w : 0;
        NativeCuda.PromptAttention(output, qc, kc, vc, lengths.narrow(0, 0, 2), lengths.narrow(0, 2, 2), chunk.Count, chunk.ContextLength,
            window, 1.0 / Math.Sqrt(_headDim), PacksPromptChunk(chunk.Count, chunk.ContextLength, window));
        return output.view(chunk.Count, _heads * _headDim);
    }

    /// <summary>Query i (position Start+i) sees keys j ≤ Start+i, and with a sliding window only the last <c>window</c> of them.
    /// Null when every query may see every key (a decode step within the window).</summary>
    private Tensor? CausalMask(in StepChunk chunk)
    {
        int? window = _config.SlidingWindow;
        bool windowed = window is { } w && chunk.ContextLength > w;
        if (chunk.Count == 1 && !windowed) return null;
        var queryPositions = torch.arange(chunk.Start, chunk.Start + chunk.Count, ScalarType.Int64, _device).unsqueeze(1);
        var keyPositions = torch.arange(0, chunk.ContextLength, ScalarType.Int64, _device).unsqueeze(0);
        var allowed = keyPositions <= queryPositions;
        if (windowed) allowed = allowed & (keyPositions > queryPositions - window!.Value);
        return allowed;
    }

    /// <summary>
    /// The decode step on libdisagg_cuda's fused kernels (see <see cref="SupportsFusedDecode"/>) for the first
    /// <paramref name="batch"/> rows of <paramref name="io"/>: one query token per row, its K/V written to the cache, float32
    /// logits and their argmax left in io's outputs. It rounds where <see cref="Forward"/> rounds, issues no host
    /// synchronisation and creates no tensor from host data, so that it can be captured into a CUDA graph.
    /// </summary>
    public void ForwardDecodeFused(DecodeBuffers io, int batch)
    {
        using var scope = torch.NewDisposeScope();
        var layers = _weights.Layers;
        var positions = io.Positions(batch);
        var slots = io.Slots(batch);
        var tables = io.BlockTables(batch);
        var contexts = io.ContextLengths(batch);
        double scale = 1.0 / Math.Sqrt(_headDim);
        int window = _config.SlidingWindow ?? 0;

        // Thin steps (at most NativeLinearRows rows) run every linear layer on the native thin kernel, which also takes over
        // the RMSNorms (folded into the next linear layer), the residual adds (into the previous one), the activation, and
        // (without q/k norms) the rotary embedding and KV-cache write (into the qkv projection's epilogue); wider steps use cuBLAS between the rms_norm and silu_mul kernels. Both round where Forward rounds.
        bool thin = batch <= NativeLinearRows && _config.HiddenSize % 8 == 0 && _config.IntermediateSize % 8 == 0 && _heads * _headDim % 8 == 0;
        var x = _weights.Embedding.index_select(0, io.Tokens(batch)); // [batch, hidden]: the residual stream, updated in place
        var normed = thin ? null : torch.empty_like(x);                // norm(x), when the norms are kernels of their own
        var attention = torch.empty([batch, _heads * _headDim], x.dtype, _device);
        if (!thin) NativeCuda.RmsNorm(normed!, x, null, layers[0].InputNorm, _eps);
        Tensor NormedLinear(Tensor weight, Tensor? bias, Tensor norm) // weight (norm(x)) (+ bias)
        {
            if (!thin) return F.linear(normed!, weight, bias);
            var output = torch.empty([batch, weight.shape[0]], x.dtype, _device);
            NativeCuda.Linear(output, x, weight, bias, norm, _eps);
            return output;
        }
        void AddLinear(Tensor input, Tensor weight, Tensor? bias, Tensor nextNorm) // x += weight (input) (+ bias)
        {
            if (thin) NativeCuda.Linear(x, input, weight, bias, accumulate: true);
            else NativeCuda.RmsNorm(normed!, F.linear(input, weight, bias), x, nextNorm, _eps); // and normed = norm(x)
        }

        for (int l = 0; l < layers.Length; l++)
        {
            using var layerScope = torch.NewDisposeScope();
            var w = layers[l];
            Tensor qkv;
            if (thin && w.QueryNorm is null && w.KeyNorm is null) // the rotary embedding and the cache write in the projection's epilogue
            {
                qkv = torch.empty([batch, w.QkvProjection.shape[0]], x.dtype, _device);
                NativeCuda.LinearRopeKv(qkv, x, w.QkvProjection, w.QkvBias, w.InputNorm, _eps, positions, slots, _rope.Cos, _rope.Sin,
                    _cache.Keys(l), _cache.Values(l), _heads, _kvHeads);
            }
            else
            {
                qkv = NormedLinear(w.QkvProjection, w.QkvBias, w.InputNorm);
                if (w.QueryNorm is not null)
                {
                    var q = qkv.narrow(1, 0, _heads * _headDim).view(batch, _heads, _headDim);
                    NativeCuda.RmsNorm(q, q, null, w.QueryNorm, _eps);
                }
                if (w.KeyNorm is not null)
                {
                    var k = qkv.narrow(1, _heads * _headDim, _kvHeads * _headDim).view(batch, _kvHeads, _headDim);
                    NativeCuda.RmsNorm(k, k, null, w.KeyNorm, _eps);
                }
                NativeCuda.RopeStoreKv(qkv, positions, slots, _rope.Cos, _rope.Sin, _cache.Keys(l), _cache.Values(l), _heads, _kvHeads);
            }
            NativeCuda.PagedAttention(attention, qkv, _cache.Keys(l), _cache.Values(l), tables, contexts, io.Workspace, io.AttentionCounters,
                _heads, _kvHeads, _cache.Layout.BlockSize, window, io.PartitionsFor(batch), scale);
            AddLinear(attention, w.OutputProjection, w.OutputBias, w.PostAttentionNorm);
            var activation = torch.empty([batch, w.GateUpProjection.shape[0] / 2], x.dtype, _device);
            if (thin) NativeCuda.Linear(activation, x, w.GateUpProjection, w.GateUpBias, w.PostAttentionNorm, _eps, gated: true);
            else NativeCuda.SiluMul(activation, F.linear(normed!, w.GateUpProjection, w.GateUpBias));
            AddLinear(activation, w.DownProjection, w.DownBias, l + 1 < layers.Length ? layers[l + 1].InputNorm : _weights.FinalNorm);
        }
        var logits = io.Logits.narrow(0, 0, batch);
        logits.copy_(NormedLinear(_weights.LanguageModelHead, null, _weights.FinalNorm));
        io.Argmax.narrow(0, 0, batch).copy_(logits.argmax(1));
    }

    /// <summary>RMSNorm as the reference computes it: statistics in float32, scaled by the weight in the model dtype.</summary>
    private Tensor RmsNorm(Tensor x, Tensor weight)
    {
        var x32 = x.to(ScalarType.Float32);
        var variance = x32.pow(2).mean([-1], keepdim: true);
        return weight * (x32 * (variance + _eps).rsqrt()).to(x.dtype);
    }

    public void Dispose()
    {
        _rope.Dispose();
        _weights.Dispose();
        _cache.Dispose();
    }
}
