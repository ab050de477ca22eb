using System.Runtime.InteropServices;
using System.Text;
using Disagg.Cuda.Runtime;
using static TorchSharp.torch;

namespace Disagg.Cuda.Native;

/// <summary>
/// The one managed wrapper of <c>libdisagg_cuda.so</c> (native/cuda): CUDA features TorchSharp lacks. The library is optional:
/// it is looked for in <c>DISAGG_NATIVE_DIR</c> and next to the app, and everything that uses it has a pure TorchSharp
/// fallback or says clearly that it needs it.
/// </summary>
internal static unsafe class NativeCuda
{
    /// <summary>Environment variable naming the folder that holds libdisagg_cuda.so.</summary>
    public const string DirectoryVariable = "DISAGG_NATIVE_DIR";

    private const string FileName = "libdisagg_cuda.so";
    private const int ErrorCapacity = 512;
    private static readonly Lock Gate = new();
    private static bool _tried;
    private static string? _loadError;
    private static delegate* unmanaged<IntPtr, byte*, long*, byte*, int, int> _export;
    private static delegate* unmanaged<byte*, long, long*, int, int, int, byte*, int, IntPtr> _import;

    /// <summary>True when the library is present and of a known ABI version.</summary>
    public static bool IsAvailable => TryLoad();

    /// <summary>Why the library is not available (null when it is).</summary>
    public static string? LoadError => TryLoad() ? null : _loadError;

    /// <summary>The 64-byte CUDA IPC handle of the allocation holding <paramref name="tensor"/>, and the tensor's byte offset in it.</summary>
    public static (byte[] Handle, long Offset) ExportIpc(Tensor tensor)
    {
        Require();
        var handle = new byte[64];
        long offset;
        byte* error = stackalloc byte[ErrorCapacity];
        fixed (byte* h = handle)
            if (_export(tensor.Handle, h, &offset, error, ErrorCapacity) != 0)
                throw new TorchRuntimeException($"CUDA IPC export failed: {Message(error)}");
        return (handle, offset);
    }

    /// <summary>A tensor over memory another process exported (see <see cref="ExportIpc"/>). Disposing it closes the mapping.</summary>
    public static Tensor ImportIpc(ReadOnlySpan<byte> handle, long offset, long[] shape, ScalarType type, int deviceIndex)
    {
        Require();
        if (handle.Length != 64) throw new ArgumentException("A CUDA IPC handle is 64 bytes.", nameof(handle));
        byte* error = stackalloc byte[ErrorCapacity];
        IntPtr result;
        fixed (byte* h = handle)
        fixed (long* s = shape)
            result = _import(h, offset, s, shape.Length, (int)type, deviceIndex, error, ErrorCapacity);
        if (result == IntPtr.Zero) throw new TorchRuntimeException($"CUDA IPC import failed: {Message(error)}");
        return Tensor.UnsafeCreateTensor(result);
    }

    private static void Require()
    {
        if (!TryLoad()) throw new TorchRuntimeException($"This needs {FileName} (native/cuda, built with native/cuda/build.sh): {_loadError}");
    }

    private static bool TryLoad()
    {
        lock (Gate)
        {
            if (_tried) return _export != null;
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
            var version = (delegate* unmanaged<int>)NativeLibrary.GetExport(library, "disagg_cuda_abi_version");
            if (version() != 1)
            {
                _loadError = $"{path} has ABI version {version()}, this Disagg needs 1";
                return false;
            }
            _export = (delegate* unmanaged<IntPtr, byte*, long*, byte*, int, int>)NativeLibrary.GetExport(library, "disagg_ipc_export");
            _import = (delegate* unmanaged<byte*, long, long*, int, int, int, byte*, int, IntPtr>)NativeLibrary.GetExport(library, "disagg_ipc_import");
            return true;
        }
    }

    private static string Message(byte* error) => Marshal.PtrToStringUTF8((IntPtr)error) ?? "unknown error";
}
