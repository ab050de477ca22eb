using Disagg.Cuda.Native;
using Disagg.Scheduling;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>
/// The fast decode path on CUDA: decode-only steps run <see cref="LlamaModel.ForwardDecodeFused"/> (libdisagg_cuda's fused
/// kernels and paged attention around cuBLAS matrix products), replayed from CUDA graphs captured at load for a ladder of
/// batch sizes, so that a step costs one graph launch instead of hundreds of TorchSharp calls. A step of n sequences runs
/// the smallest captured size >= n, the extra rows padding. A mixed step (decode rows beside prompt chunks) runs its
/// single-token chunks here and its prompt chunks through the TorchSharp forward (see <see cref="StepPartition"/>);
/// decode-only steps of more sequences than the largest graph take the TorchSharp path.
/// </summary>
internal sealed partial class CudaGraphDecoder : IDisposable
{
    private readonly LlamaModel _model;
    private readonly DecodeBuffers _buffers;
    private readonly int[] _sizes;
    private readonly IntPtr[] _graphs;
    private readonly Device _device;
    private bool _unread; // a step ran and nothing has waited for it since

    private CudaGraphDecoder(LlamaModel model, DecodeBuffers buffers, int[] sizes, IntPtr[] graphs, Device device)
    {
        _device = device;
        _model = model;
        _buffers = buffers;
        _sizes = sizes;
        _graphs = graphs;
    }

    /// <summary>"cuda-graphs" or "fused-eager" (graphs off, or their capture failed).</summary>
    public string Path => _graphs.Length > 0 ? "cuda-graphs" : "fused-eager";

    /// <summary>Why capture failed and the fused kernels run eagerly instead (null when graphs are in use or were not asked for).</summary>
    public string? GraphError { get; private init; }

    /// <summary>The batch sizes captured: 1, 2, 4, then every multiple of 8 up to <paramref name="maxBatch"/>.</summary>
    public static int[] BatchSizes(int maxBatch)
    {
        var sizes = new List<int>();
        for (int s = 1; s < Math.Min(8, maxBatch); s *= 2) sizes.Add(s);
        for (int s = 8; s <= maxBatch; s += 8) sizes.Add(s);
        if (sizes.Count == 0 || sizes[^1] != maxBatch) sizes.Add(maxBatch);
        return [.. sizes];
    }

    /// <summary>
    /// Builds the decoder: checks the fused step against one eager run, then captures a graph per batch size (largest
    /// first, all in one memory pool) when <paramref name="useGraphs"/>.
    /// </summary>
    public static CudaGraphDecoder Create(LlamaModel model, int maxBatch, bool useGraphs, int maxContext, int vocabulary, Device device)
    {
        var buffers = new DecodeBuffers(maxBatch, maxContext, model.Cache.Layout.BlockSize, model.Heads, model.KvHeads, model.HeadDim, vocabulary, device);
        try
        {
            // Warm-up on padding rows: loads the kernels and cuBLAS's workspaces before any capture; writes no KV.
            buffers.Upload([], maxBatch);
            model.ForwardDecodeFused(buffers, maxBatch);
            torch.cuda.synchronize(device);
        }
        catch
        {
            buffers.Dispose();
            throw;
        }
        if (!useGraphs) return new CudaGraphDecoder(model, buffers, [], [], device);

        var sizes = BatchSizes(maxBatch);
        var graphs = new IntPtr[sizes.Length];
        try
        {
            IntPtr pool = IntPtr.Zero;
            for (int i = sizes.Length - 1; i >= 0; i--)
            {
                buffers.Upload([], sizes[i]);
                graphs[i] = Capture(model, buffers, sizes[i], device, pool);
                pool = graphs[^1];
            }
            return new CudaGraphDecoder(model, buffers, sizes, graphs, device);
        }
        catch (Exception e)
        {
            foreach (var g in graphs) NativeCuda.GraphDestroy(g);
            return new CudaGraphDecoder(model, buffers, [], [], device) { GraphError = e.Message };
        }
    }

    private static IntPtr Capture(LlamaModel model, DecodeBuffers buffers, int batch, Device device, IntPtr pool)
    {
        var graph = NativeCuda.GraphCaptureBegin(device.index, pool);
        try
        {
            try
            {
                // The step copies its staged inputs in and its argmax out itself: a replay needs no other call.
                buffers.CopyIn(batch);
                model.ForwardDecodeFused(buffers, batch);
                buffers.CopyOut();
            }
            finally
            {
                NativeCuda.GraphCaptureEnd(graph);
            }
            NativeCuda.GraphReplay(graph); // a first replay proves it runs
            torch.cuda.synchronize(device);
            return graph;
        }
        catch
        {
            NativeCuda.GraphDestroy(graph);
            throw;
        }
    }

    /// <summary>Most rows a step may give it.</summary>
    public int MaxBatch => _buffers.MaxBatch;

    /// <summary>Longest block table a row may have.</summary>
    public int MaxBlocks => _buffers.MaxBlocks;

    /// <summary>True when <paramref name="chunks"/> (a step) is decode-only and small enough for this decoder.</summary>
    public bool CanRun(ReadOnlySpan<ScheduledChunk> chunks) => _buffers.Fits(chunks);

    /// <summary>Runs <paramref name="chunks"/> (single-token chunks that fit: a decode-only step, or a mixed step's decode
    /// rows). Returns views of the static outputs for their rows: float32 logits [n, vocab] and their argmax [n]; valid
    /// until the next step.</summary>
    public (Tensor Logits, Tensor Argmax) Run(ReadOnlySpan<ScheduledChunk> chunks)
    {
        int n = chunks.Length;
        int index = GraphFor(n);
        int rows = index >= 0 ? _sizes[index] : n;
        // The last step copies its inputs from the pinned mirror when it runs on the device: before it is rewritten, that step
        // must have run. ReadArgmax waits for it anyway; a step whose caller read nothing (no row sampled) did not.
        if (_unread) torch.cuda.synchronize(_device);
        _unread = true;
        _buffers.Stage(chunks, rows);
        if (index >= 0) NativeCuda.GraphReplay(_graphs[index]);
        else
        {
            _buffers.CopyIn(rows);
            _model.ForwardDecodeFused(_buffers, rows);
            _buffers.CopyOut();
        }
        return (_buffers.Logits.narrow(0, 0, n), _buffers.Argmax.narrow(0, 0, n));
    }

    /// <summary>The argmax of the first <paramref name="rows"/> rows of the last <see cref="Run"/>, waiting for the step to
    /// finish: the step copied them to pinned host memory itself, so reading them costs no further device call.</summary>
    public long[] ReadArgmax(int rows)
    {
        _unread = false;
        return _buffers.ReadArgmax(rows, _device);
    }

    /// <summary>The smallest captured graph with at least <paramref name="rows"/> rows, or -1 (none captured that large).</summary>
    private int GraphFor(int rows)
    {
        for (int i = 0; i < _graphs.Length; i++)
            if (_sizes[i] >= rows) return i;
        return -1;
    }

    /// <summary>Frees the graphs and buffers; idempotent (an engine and its owner may both dispose the executor).</summary>
    public void Dispose()
    {
        for (int i = 0; i < _graphs.Length; i++)
        {
            NativeCuda.GraphDestroy(_graphs[i]);
            _graphs[i] = IntPtr.Zero;
        }
        _buffers.Dispose();
    }
}
