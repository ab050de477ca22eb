using Disagg.Cuda.Runtime;
using Disagg.Sampling;
using FsCheck.Xunit;

namespace Disagg.Cuda.Tests.Model;

public class DeviceSamplerTests
{
    public DeviceSamplerTests() => TorchRuntime.Initialize();

    /// <summary>
    /// Rows of random logits (with many exact ties), random temperature, top-k, top-p, min-p, draws and penalties over a
    /// random history (greedy rows among them): the device sampler (here on libtorch's CPU backend) picks exactly the token
    /// the reference <see cref="TokenSampler"/> picks. <c>Disagg.Cuda.DeviceCheck --sampler-check</c> runs the same cases on a GPU.
    /// </summary>
    [Property(MaxTest = 300)]
    public void Agrees_with_the_reference_sampler(int seed)
    {
        var (expected, actual, logitsKept) = SamplerCase.Run(seed, "cpu");
        Assert.True(logitsKept, "the caller's logits are left as they were");
        Assert.Equal(expected, actual);
    }
}
