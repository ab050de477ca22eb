using System.Text;
using Disagg.Cuda.Runtime;
using TorchSharp;

namespace Disagg.Cuda.Tests.Runtime;

public class TorchRuntimeTests
{
    [Fact]
    public void Libtorch_loads_and_computes_on_this_machine()
    {
        var info = TorchRuntime.Initialize();
        Assert.Equal(TorchBackend.Cpu, info.Backend);
        Assert.Same(info, TorchRuntime.Initialize()); // idempotent
        using var a = torch.arange(6, dtype: torch.float32).reshape(2, 3);
        using var b = a.matmul(a.t());
        Assert.Equal(new float[] { 5, 14, 14, 50 }, b.data<float>().ToArray());
    }

    [Fact]
    public void The_glibcxx_requirement_is_relaxed_exactly_when_this_machines_cpp_runtime_lacks_it()
    {
        if (!OperatingSystem.IsLinux()) return;
        var info = TorchRuntime.Initialize();
        // The C++ runtime this process really uses, as the dynamic loader mapped it.
        string libstdcxx = File.ReadLines("/proc/self/maps").Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f.Length >= 6 && Path.GetFileName(f[5]).StartsWith("libstdc++.so", StringComparison.Ordinal))
            .Select(f => f[5]).First();
        bool hasVersion = File.ReadAllBytes(libstdcxx).AsSpan().IndexOf("GLIBCXX_3.4.32"u8) >= 0;
        Assert.Equal(!hasVersion, info.RelaxedGlibcxx);
        if (info.RelaxedGlibcxx)
        {
            var need = ElfVersionPatch.Inspect(File.ReadAllBytes(info.LibTorchSharpPath), "GLIBCXX_3.4.32");
            Assert.True(need.AlreadyWeak);
            Assert.Empty(need.Symbols);
        }
    }
}
