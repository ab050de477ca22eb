using Disagg.Benchmarks.Transport;

namespace Disagg.Benchmarks.Tests.Microbenchmarks;

/// <summary>The socket transfer benchmark measures what it says: each invocation moves every layer of the prompt's KV,
/// over each link, and can run again (its reservation is released).</summary>
public sealed class SocketKvTransferBenchmarkTests
{
    [Theory]
    [InlineData("unix")]
    [InlineData("tcp")]
    [InlineData("tcp+tls")]
    public async Task Each_invocation_moves_every_byte_of_the_prompts_kv(string link)
    {
        var benchmark = new SocketKvTransferBenchmarks { Shape = "qwen2.5-0.5b", Link = link };
        await benchmark.StartAsync();
        try
        {
            const long Expected = 24L * 2 * 2 * 64 * 2 * 2048; // layers x (K, V) x KV heads x head dim x bf16 bytes x tokens
            Assert.Equal(Expected, await benchmark.Transfer());
            Assert.Equal(Expected, await benchmark.Transfer());
        }
        finally
        {
            await benchmark.StopAsync();
        }
    }
}
