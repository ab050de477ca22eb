using System.Runtime.InteropServices;
using Disagg.Kv;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;
using Disagg.Transport.Tests.Sockets;
using Xunit.Abstractions;

namespace Disagg.Transport.Tests.Tls;

/// <summary>The socket transport over TCP + TLS: the same tokens as colocated, nothing readable on the wire, backpressure intact.</summary>
public class TlsGenerationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(false, 5)]
    [InlineData(true, 6)]
    public async Task Disaggregated_over_tls_equals_colocated(bool prefixCaching, int seed)
    {
        await using var decode = new DecodeSide(unix: false, prefixCaching, options: TlsSupport.Worker());
        await using var remote = await RemoteDecodeEngine.ConnectAsync(decode.EndPoint, TlsSupport.PinnedClient());

        await DisaggregatedOverSocketsTests.AssertRemoteDecodeEqualsColocated(decode, remote, prefixCaching,
            TestWorkloads.SharedPrefixes(seed, 10, alwaysSeeded: false));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_eavesdropper_sees_frames_and_prompts_only_without_tls(bool tls)
    {
        await using var decode = new DecodeSide(unix: false, options: tls ? TlsSupport.Worker() : TestSupport.Options());
        await using var prefill = new PrefillSide();
        await using var proxy = new RecordingProxy(decode.EndPoint);
        await using var remote = await RemoteDecodeEngine.ConnectAsync(proxy.EndPoint, tls ? TlsSupport.PinnedClient() : TestSupport.Options());
        int[] prompt = [7, 13, 21, 33, 5, 17, 29, 11, 38, 2, 19, 27, 44, 9, 31, 23];
        var request = new InferenceRequest(prompt, SamplingParameters.Greedy with { MaxTokens = 6 });

        var (tokens, _, _) = await prefill.GenerateAsync(remote, remote.CreateTransport(prefill.Executor.BlockStore), request);

        Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
        var wire = proxy.Recorded();
        Assert.True(wire.Length > 1000, $"Only {wire.Length} bytes crossed the proxy.");
        // The Reserve frame carries the prompt as consecutive little-endian int32s, and every frame starts with "DGKV".
        bool promptVisible = wire.AsSpan().IndexOf(MemoryMarshal.AsBytes(prompt.AsSpan())) >= 0;
        bool framesVisible = wire.AsSpan().IndexOf("DGKV"u8) >= 0;
        Assert.Equal(!tls, promptVisible);
        Assert.Equal(!tls, framesVisible);
        await decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task A_large_transfer_over_tls_arrives_intact_through_bounded_buffers()
    {
        // 4 layers x 8 KV heads x 128 dims x 16 tokens x fp16 = 64 KiB per block and layer; 128 blocks = 32 MiB.
        var layout = new KvCacheLayout(4, 8, 128, 16, KvDataType.Float16);
        const int Blocks = 128;
        var source = new ArrayKvStore(layout, Blocks);
        var destination = new ArrayKvStore(layout, Blocks);
        var serverOptions = TlsSupport.Worker();
        var clientOptions = TlsSupport.PinnedClient();
        clientOptions.SendBufferBytes = 256 << 10; // the sender must wait for TLS and the socket, not buffer
        await using var server = new DecodeWorkerServer(new ReserveOnlyEngine(layout, Blocks), destination, serverOptions);
        server.Start(TestSupport.NewEndPoint(unix: false));
        await using var remote = await RemoteDecodeEngine.ConnectAsync(server.LocalEndPoint!, clientOptions);
        var localIds = Enumerable.Range(0, Blocks).ToArray();
        for (int layer = 0; layer < layout.NumLayers; layer++)
            foreach (int b in localIds) new Random(layer * 1000 + b).NextBytes(source.Block(layer, b));
        var request = new InferenceRequest(new int[Blocks * layout.BlockSize]);
        using var reservation = await remote.ReserveAsync(request);

        var result = await remote.CreateTransport(source).TransferAsync(new KvHandle(request.Id, layout, localIds, request.PromptTokens.Length), reservation);

        Assert.Equal(Blocks * layout.BytesPerBlock, result.Bytes);
        var remoteIds = reservation.Destination.BlockIds.ToArray();
        for (int layer = 0; layer < layout.NumLayers; layer++)
            for (int i = 0; i < Blocks; i++)
                Assert.True(source.Block(layer, localIds[i]).SequenceEqual(destination.Block(layer, remoteIds[i])), $"Layer {layer}, block {i} differs.");
        output.WriteLine($"TCP+TLS loopback: {result.Bytes >> 20} MiB in {result.Elapsed.TotalMilliseconds:0} ms = {result.BytesPerSecond / (1 << 20):0} MiB/s");
        Assert.Equal([5], await TestSupport.Collect(remote.DecodeAsync(reservation, new GeneratedToken(5, 0, 0))));
        await TestSupport.WaitUntil(() => server.OpenStreamCount == 0, () => "The stream stayed open.");
    }
}
