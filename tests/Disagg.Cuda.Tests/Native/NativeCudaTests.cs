using Disagg.Cuda.Native;
using Disagg.Cuda.Runtime;
using TorchSharp;

namespace Disagg.Cuda.Tests.Native;

/// <summary>The managed wrapper of libdisagg_cuda on a machine without it (CI): every entry point fails with a typed error.</summary>
public class NativeCudaTests
{
    [Fact]
    public void Kernels_called_without_the_library_throw_a_typed_error_naming_it()
    {
        TorchRuntime.Initialize(TorchBackend.Cpu);
        if (NativeCuda.IsAvailable) return; // a CUDA machine with the library built: nothing to check here
        using var x = torch.ones(2, 8);
        using var weight = torch.ones(8);
        using var contexts = torch.ones([2], torch.int32);
        // Calling an entry point of a library that was never loaded would jump to address 0 and kill the process.
        var errors = new[]
        {
            Assert.Throws<TorchRuntimeException>(() => NativeCuda.RmsNorm(x, x, null, weight, 1e-6)),
            Assert.Throws<TorchRuntimeException>(() => NativeCuda.SiluMul(x, x)),
            Assert.Throws<TorchRuntimeException>(() => NativeCuda.LinearRopeKv(x, x, x, null, null, 1e-6, contexts, contexts, x, x, x, x, 1, 1)),
            Assert.Throws<TorchRuntimeException>(() => NativeCuda.PagedAttention(x, x, x, x, x, contexts, null, null, 1, 1, 16, 0, 1, 1.0)),
            Assert.Throws<TorchRuntimeException>(() => NativeCuda.GraphReplay(IntPtr.Zero)),
            Assert.Throws<TorchRuntimeException>(() => NativeCuda.ProgrammaticLaunch = true),
        };
        Assert.False(NativeCuda.ProgrammaticLaunch);
        Assert.All(errors, e => Assert.Contains("libdisagg_cuda", e.Message));
        Assert.NotNull(NativeCuda.LoadError);
    }
}
