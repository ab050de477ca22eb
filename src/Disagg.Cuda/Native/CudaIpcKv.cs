using Disagg.Cuda.Model;

namespace Disagg.Cuda.Native;

/// <summary>
/// GPU-direct KV transfer between processes on one host, through CUDA IPC (needs libdisagg_cuda.so, see native/cuda).
/// The decode process exports its KV pool once (<see cref="Export"/>) and sends the bytes to the prefill process over any
/// control channel; the prefill process opens it (<see cref="Open"/>) and gives the result to an in-process transport as the
/// destination store: prefill KV then goes straight from its GPU into the decode process's GPU memory. The memory is
/// synchronised before a transfer completes, so the decode process can use the blocks as soon as it hears so.
/// </summary>
public static class CudaIpcKv
{
    /// <summary>True when libdisagg_cuda.so is present (otherwise <see cref="NativeUnavailableReason"/> says why).</summary>
    public static bool IsAvailable => NativeCuda.IsAvailable;

    /// <summary>Why the native library is not available, or null.</summary>
    public static string? NativeUnavailableReason => NativeCuda.LoadError;

    /// <summary>Describes <paramref name="executor"/>'s KV pool (on a CUDA device) for another process.</summary>
    public static byte[] Export(TorchModelExecutor executor)
    {
        ArgumentNullException.ThrowIfNull(executor);
        return executor.KvCache.ExportIpc().ToBytes();
    }

    /// <summary>
    /// Opens a KV pool another process exported, as this process's cuda:<paramref name="deviceIndex"/> (the same physical GPU).
    /// Dispose the result to close the mapping. Throws <see cref="InvalidDataException"/> for a malformed descriptor.
    /// </summary>
    public static PagedKvCache Open(byte[] descriptor, int deviceIndex)
    {
        ArgumentNullException.ThrowIfNull(descriptor);
        return PagedKvCache.OpenIpc(KvIpcDescriptor.FromBytes(descriptor), deviceIndex);
    }
}
