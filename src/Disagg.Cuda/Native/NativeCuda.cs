using System.Runtime.InteropServices;
using Disagg.Cuda.Runtime;
using static TorchSharp.torch;

namespace Disagg.Cuda.Native;

/// <summary>
/// The one managed wrapper of <c>libdisagg_cuda.so</c> (native/cuda): CUDA kernels and CUDA features TorchSharp lacks
/// (CUDA IPC, CUDA graphs, side streams). The library is optional: it is looked for in <c>DISAGG_NATIVE_DIR</c> and next
/// to the app, and everything that uses it has a pure TorchSharp fallback or says clearly that it needs it.
/// Every call passes TorchSharp tensor handles (<c>at::Tensor*</c>) and runs on PyTorch's current stream.
/// </summary>
internal static unsafe class NativeCuda
{
    /// <summary>Environment variable naming the folder that holds libdisagg_cuda.so.</summary>
    public const string DirectoryVariable = "DISAGG_NATIVE_DIR";

    /// <summary>Environment variable that turns programmatic dependent launch off when set to 0 (see <see cref="ProgrammaticLaunch"/>).</summary>
    public const string ProgrammaticLaunchVariable = "DISAGG_PROGRAMMATIC_LAUNCH";

    private const string FileName = "libdisagg_cuda.so";
    private const int AbiVersion = 8;
    private static readonly Lock Gate = new();
    private static bool _tried;
    private static string? _loadError;
    private static Exports _x;
    private static volatile bool _loaded; // set once _x is filled in: the kernels' hot path checks only this

    private struct Exports
    {
        public delegate* unmanaged<byte*> LastError;
        public delegate* unmanaged<IntPtr, byte*, long*, int> IpcExport;
        public delegate* unmanaged<byte*, long, long*, int, int, int, IntPtr> IpcImport;
        public delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, double, int> RmsNorm;
        public delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int> RopeStoreKv;
        public delegate* unmanaged<IntPtr, IntPtr, int> SiluMul;
        public delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, double, int, int> Linear;
        public delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, double, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int> LinearRopeKv;
        public delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int, int, int, double, int> PagedAttention;
        public delegate* unmanaged<int, int> SetProgrammaticLaunch;
        public delegate* unmanaged<IntPtr, IntPtr, int*, int*, int, int, int, int, int, int> CopyBlocks;
        public delegate* unmanaged<int, int> CopyWait;
        public delegate* unmanaged<IntPtr, IntPtr, long, int> CopyAsync;
        public delegate* unmanaged<int, IntPtr, IntPtr> GraphBegin;
        public delegate* unmanaged<IntPtr, int> GraphEnd;
        public delegate* unmanaged<IntPtr, int> GraphReplay;
        public delegate* unmanaged<IntPtr, void> GraphDestroy;
        public delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int, double, int, int> PromptAttention;
    }

    /// <summary>True when the library is present and of a known ABI version.</summary>
    public static bool IsAvailable => TryLoad();

    /// <summary>Why the library is not available (null when it is).</summary>
    public static string? LoadError => TryLoad() ? null : _loadError;

    /// <summary>The 64-byte CUDA IPC handle of the allocation holding <paramref name="tensor"/>, and the tensor's byte offset in it.</summary>
    public static (byte[] Handle, long Offset) ExportIpc(Tensor tensor)
    {
        var handle = new byte[64];
        long offset;
        fixed (byte* h = handle) Check(X.IpcExport(tensor.Handle, h, &offset), "CUDA IPC export");
        return (handle, offset);
    }

    /// <summary>A tensor over memory another process exported (see <see cref="ExportIpc"/>). Disposing it closes the mapping.</summary>
    public static Tensor ImportIpc(ReadOnlySpan<byte> handle, long offset, long[] shape, ScalarType type, int deviceIndex)
    {
        Require();
        if (handle.Length != 64) throw new ArgumentException("A CUDA IPC handle is 64 bytes.", nameof(handle));
        IntPtr result;
        fixed (byte* h = handle)
        fixed (long* s = shape)
            result = X.IpcImport(h, offset, s, shape.Length, (int)type, deviceIndex);
        if (result == IntPtr.Zero) throw new TorchRuntimeException($"CUDA IPC import failed: {LastError()}");
        return Tensor.UnsafeCreateTensor(result);
    }

    /// <summary>out = RMSNorm(x) * weight; with <paramref name="residual"/>, residual += x first and the sum is normalised.
    /// x and out are [tokens, cols] or [tokens, heads, dim] views (out may be x).</summary>
    public static void RmsNorm(Tensor output, Tensor x, Tensor? residual, Tensor weight, double eps) =>
        Check(X.RmsNorm(output.Handle, x.Handle, residual?.Handle ?? IntPtr.Zero, weight.Handle, eps), "rms_norm");

    /// <summary>Rotary embedding of qkv's q and k heads in place, and k/v written to the layer's cache at int32 <paramref name="slots"/> (negative: skipped).</summary>
    public static void RopeStoreKv(Tensor qkv, Tensor positions, Tensor slots, Tensor cos, Tensor sin, Tensor keys, Tensor values, int heads, int kvHeads) =>
        Check(X.RopeStoreKv(qkv.Handle, positions.Handle, slots.Handle, cos.Handle, sin.Handle, keys.Handle, values.Handle, heads, kvHeads), "rope_store_kv");

    /// <summary>output = silu(gate) * up for gateUp = [gate | up].</summary>
    public static void SiluMul(Tensor output, Tensor gateUp) => Check(X.SiluMul(output.Handle, gateUp.Handle), "silu_mul");

    /// <summary>Most rows <see cref="Linear"/> takes: beyond them cuBLAS's tiled products read the weights as efficiently.</summary>
    public const int MaxLinearRows = 4;

    /// <summary>
    /// output [rows, n] = x [rows, k] weightᵀ (+ bias) for a decode step of at most <see cref="MaxLinearRows"/> rows, the
    /// weight read once in one kernel. With <paramref name="normWeight"/>, x is RMS-normalised first (as
    /// <see cref="RmsNorm"/> would); <paramref name="gated"/>: weight is [gate; up] and output = silu(gate) * up;
    /// <paramref name="accumulate"/>: output += the product (the residual stream). k must be a multiple of 8.
    /// </summary>
    public static void Linear(Tensor output, Tensor x, Tensor weight, Tensor? bias, Tensor? normWeight = null, double eps = 0,
        bool gated = false, bool accumulate = false) =>
        Check(X.Linear(output.Handle, x.Handle, weight.Handle, bias?.Handle ?? IntPtr.Zero, normWeight?.Handle ?? IntPtr.Zero, eps,
            (gated ? 1 : 0) | (accumulate ? 2 : 0)), "linear");

    /// <summary>
    /// The fused qkv projection of a decode step (at most <see cref="MaxLinearRows"/> rows, optionally RMS-normalised as in
    /// <see cref="Linear"/>) with <see cref="RopeStoreKv"/>'s work in its epilogue: output [rows, (heads + 2 kvHeads) * headDim]
    /// holds q and k rotated, and k and v are written to the layer's cache at <paramref name="slots"/>. One kernel instead of two,
    /// with the same rounding.
    /// </summary>
    public static void LinearRopeKv(Tensor output, Tensor x, Tensor weight, Tensor? bias, Tensor? normWeight, double eps, Tensor positions,
        Tensor slots, Tensor cos, Tensor sin, Tensor keys, Tensor values, int heads, int kvHeads) =>
        Check(X.LinearRopeKv(output.Handle, x.Handle, weight.Handle, bias?.Handle ?? IntPtr.Zero, normWeight?.Handle ?? IntPtr.Zero, eps,
            positions.Handle, slots.Handle, cos.Handle, sin.Handle, keys.Handle, values.Handle, heads, kvHeads), "linear_rope_kv");

    /// <summary>
    /// Decode attention of one query per sequence over the paged cache (see native/cuda/abi/ops.cpp). With more than one
    /// partition it needs <paramref name="workspace"/> (float32, <see cref="AttentionWorkspaceLength"/>) and
    /// <paramref name="counters"/> (int32, batch * kvHeads, zeroed once when allocated: every call leaves them at zero).
    /// </summary>
    public static void PagedAttention(Tensor output, Tensor q, Tensor keys, Tensor values, Tensor blockTables, Tensor contextLengths,
        Tensor? workspace, Tensor? counters, int heads, int kvHeads, int blockSize, int window, int partitions, double scale) =>
        Check(X.PagedAttention(output.Handle, q.Handle, keys.Handle, values.Handle, blockTables.Handle, contextLengths.Handle,
            workspace?.Handle ?? IntPtr.Zero, counters?.Handle ?? IntPtr.Zero, heads, kvHeads, blockSize, window, partitions, scale), "paged_attention");

    /// <summary>
    /// Causal attention of prompt chunks packed along the rows, on FlashAttention-2 (PyTorch's build): <paramref name="q"/>
    /// [totalQ, heads, dim], <paramref name="keys"/> / <paramref name="values"/> [totalK, kvHeads, dim] (grouped heads read as
    /// they are), <paramref name="cuSeqLensQ"/> / <paramref name="cuSeqLensK"/> int32 [sequences + 1] on the device. The mask is
    /// aligned to each sequence's last key, so a chunk after a cached prefix sees the whole prefix; <paramref name="window"/> &gt; 0
    /// also keeps a query to the last <paramref name="window"/> keys. bfloat16 or float16; writes <paramref name="output"/>, shaped like q.
    /// One sequence runs in FlashAttention's fixed-length form, which splits the keys among more CTAs when the queries alone
    /// leave the GPU idle; <paramref name="packed"/> keeps it in the packed form (the model chooses by <see cref="Model.LlamaModel.PacksPromptChunk"/>).
    /// </summary>
    public static void PromptAttention(Tensor output, Tensor q, Tensor keys, Tensor values, Tensor cuSeqLensQ, Tensor cuSeqLensK,
        int maxQ, int maxK, int window, double scale, bool packed) =>
        Check(X.PromptAttention(output.Handle, q.Handle, keys.Handle, values.Handle, cuSeqLensQ.Handle, cuSeqLensK.Handle, maxQ, maxK, window, scale,
            packed ? 1 : 0), "prompt_attention");

    /// <summary>float32 elements of <see cref="PagedAttention"/>'s workspace for a batch split into <paramref name="partitions"/>.</summary>
    public static long AttentionWorkspaceLength(int batch, int heads, int headDim, int partitions) => (long)batch * heads * partitions * (headDim + 2);

    /// <summary>
    /// Whether the kernels are launched with programmatic dependent launch (Hopper and later): each kernel of a decode step
    /// starts, and requests its weights, while the one before it finishes (native/cuda/kernels/launch.cuh). On by default
    /// where the device supports it; <c>DISAGG_PROGRAMMATIC_LAUNCH=0</c> turns it off. Process-wide, and a CUDA graph keeps
    /// what was set when it was captured. Setting it returns what took effect (false on older devices).
    /// </summary>
    public static bool ProgrammaticLaunch
    {
        get => IsAvailable && _programmaticLaunch;
        set => _programmaticLaunch = X.SetProgrammaticLaunch(value ? 1 : 0) != 0;
    }

    private static bool _programmaticLaunch;

    /// <summary>Copies whole blocks of layers [layerBegin, layerEnd) between two pool storages, in one kernel on the source device;
    /// on its copy stream (after the work already queued) when <paramref name="onCopyStream"/>, else on its current stream.</summary>
    public static void CopyBlocks(Tensor source, Tensor destination, ReadOnlySpan<int> sourceIds, ReadOnlySpan<int> destinationIds,
        int layerBegin, int layerEnd, int blockSize, bool onCopyStream)
    {
        fixed (int* s = sourceIds)
        fixed (int* d = destinationIds)
            Check(X.CopyBlocks(source.Handle, destination.Handle, s, d, sourceIds.Length, layerBegin, layerEnd, blockSize, onCopyStream ? 1 : 0), "copy_blocks");
    }

    /// <summary>
    /// Copies the first <paramref name="elements"/> elements of <paramref name="source"/> into <paramref name="destination"/>
    /// (contiguous, one dtype, host memory pinned) asynchronously on the current stream: a plain cudaMemcpyAsync, which a
    /// CUDA graph can capture (TorchSharp's non-blocking copy_ cannot be captured from or into pinned memory).
    /// </summary>
    public static void CopyAsync(Tensor destination, Tensor source, long elements) =>
        Check(X.CopyAsync(destination.Handle, source.Handle, elements), "copy_async");

    /// <summary>Waits until every copy issued on cuda:<paramref name="device"/>'s copy stream is done.</summary>
    public static void CopyWait(int device) => Check(X.CopyWait(device), "copy_wait");

    /// <summary>Starts capturing this thread's CUDA work on cuda:<paramref name="device"/> into a graph.</summary>
    public static IntPtr GraphCaptureBegin(int device, IntPtr sharePoolWith)
    {
        var graph = X.GraphBegin(device, sharePoolWith);
        if (graph == IntPtr.Zero) throw new TorchRuntimeException($"CUDA graph capture could not start: {LastError()}");
        return graph;
    }

    /// <summary>Ends the capture this thread started.</summary>
    public static void GraphCaptureEnd(IntPtr graph) => Check(X.GraphEnd(graph), "CUDA graph capture");

    /// <summary>Replays a captured graph.</summary>
    public static void GraphReplay(IntPtr graph) => Check(X.GraphReplay(graph), "CUDA graph replay");

    /// <summary>Frees a graph.</summary>
    public static void GraphDestroy(IntPtr graph)
    {
        if (graph != IntPtr.Zero && TryLoad()) _x.GraphDestroy(graph);
    }

    private static void Check(int status, string what)
    {
        if (status != 0) throw new TorchRuntimeException($"{what} failed: {LastError()}");
    }

    private static string LastError() => Marshal.PtrToStringUTF8((IntPtr)_x.LastError()) ?? "unknown error";

    /// <summary>The exports, after checking the library is loaded: calling an unloaded entry point would jump to address 0.</summary>
    private static ref readonly Exports X
    {
        get
        {
            if (!_loaded) Require();
            return ref _x;
        }
    }

    private static void Require()
    {
        if (!TryLoad()) throw new TorchRuntimeException($"This needs {FileName} (native/cuda, built with native/cuda/build.sh): {_loadError}");
    }

    private static bool TryLoad()
    {
        lock (Gate)
        {
            if (_tried) return _loadError is null;
            _tried = true;
            string? dir = Environment.GetEnvironmentVariable(DirectoryVariable);
            string? path = !string.IsNullOrEmpty(dir) && File.Exists(Path.Combine(dir, FileName)) ? Path.Combine(dir, FileName) : TorchRuntime.FindNative(FileName);
            if (path is null)
            {
                _loadError = $"{FileName} not found (set {DirectoryVariable})";
                return false;
            }
            if (!NativeLibrary.TryLoad(path, out var library))
            {
                _loadError = $"{path} could not be loaded (is libtorch loaded, TorchRuntime.Initialize(Cuda)?)";
                return false;
            }
            var version = ((delegate* unmanaged<int>)NativeLibrary.GetExport(library, "disagg_cuda_abi_version"))();
            if (version != AbiVersion)
            {
                _loadError = $"{path} has ABI version {version}, this Disagg needs {AbiVersion}";
                return false;
            }
            IntPtr Get(string name) => NativeLibrary.GetExport(library, name);
            _x = new Exports
            {
                LastError = (delegate* unmanaged<byte*>)Get("disagg_last_error"),
                IpcExport = (delegate* unmanaged<IntPtr, byte*, long*, int>)Get("disagg_ipc_export"),
                IpcImport = (delegate* unmanaged<byte*, long, long*, int, int, int, IntPtr>)Get("disagg_ipc_import"),
                RmsNorm = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, double, int>)Get("disagg_rms_norm"),
                RopeStoreKv = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int>)Get("disagg_rope_store_kv"),
                SiluMul = (delegate* unmanaged<IntPtr, IntPtr, int>)Get("disagg_silu_mul"),
                Linear = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, double, int, int>)Get("disagg_linear"),
                LinearRopeKv = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, double, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int>)Get("disagg_linear_rope_kv"),
                PagedAttention = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int, int, int, double, int>)Get("disagg_paged_attention"),
                SetProgrammaticLaunch = (delegate* unmanaged<int, int>)Get("disagg_set_programmatic_launch"),
                CopyBlocks = (delegate* unmanaged<IntPtr, IntPtr, int*, int*, int, int, int, int, int, int>)Get("disagg_copy_blocks"),
                CopyWait = (delegate* unmanaged<int, int>)Get("disagg_copy_wait"),
                CopyAsync = (delegate* unmanaged<IntPtr, IntPtr, long, int>)Get("disagg_copy_async"),
                GraphBegin = (delegate* unmanaged<int, IntPtr, IntPtr>)Get("disagg_graph_capture_begin"),
                GraphEnd = (delegate* unmanaged<IntPtr, int>)Get("disagg_graph_capture_end"),
                GraphReplay = (delegate* unmanaged<IntPtr, int>)Get("disagg_graph_replay"),
                GraphDestroy = (delegate* unmanaged<IntPtr, void>)Get("disagg_graph_destroy"),
                PromptAttention = (delegate* unmanaged<IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, IntPtr, int, int, int, double, int, int>)Get("disagg_prompt_attention"),
            };
            _programmaticLaunch = _x.SetProgrammaticLaunch(Environment.GetEnvironmentVariable(ProgrammaticLaunchVariable) != "0" ? 1 : 0) != 0;
            _loaded = true;
            return true;
        }
    }
}
