using Disagg.Tests.TestModel;
using Disagg.Transport.InProcess;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>
/// GPU-direct transfers in miniature: the client writes the worker's KV memory itself (on a GPU that memory is opened through
/// CUDA IPC; here both live in one process) and only "done" crosses the socket.
/// </summary>
public class DirectTransferTests
{
    [Fact]
    public async Task A_direct_transfer_gives_the_tokens_of_a_colocated_run()
    {
        var options = TestSupport.Options();
        options.AcceptDirectTransfers = true;
        await using var decode = new DecodeSide(unix: true, prefixCaching: true, options: options);
        await using var prefill = new PrefillSide(prefixCaching: true);
        await using var remote = await decode.ConnectAsync();
        var transport = new DirectKvTransport(remote, new InProcessKvTransport(prefill.Executor.BlockStore, decode.Executor.BlockStore));

        var rng = new Random(5);
        int[] system = [.. Enumerable.Range(0, 12).Select(_ => rng.Next(1, ToyModel.VocabularySize))];
        for (int i = 0; i < 6; i++)
        {
            var request = new InferenceRequest(system.Concat(Enumerable.Range(0, rng.Next(1, 10)).Select(_ => rng.Next(1, ToyModel.VocabularySize))).ToArray(),
                new SamplingParameters { Temperature = 0.7f, Seed = (ulong)i, MaxTokens = 12 });
            var (tokens, transfer, cached) = await prefill.GenerateAsync(remote, transport, request);
            Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
            Assert.Equal(decode.Engine.KvLayout.BlocksForTokens(request.PromptTokens.Length) - cached / decode.Engine.KvLayout.BlockSize, transfer.Blocks);
        }
        await decode.AssertIdleAndLeakFree();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
    }

    [Fact]
    public async Task A_published_descriptor_reaches_authenticated_clients_and_enables_direct_transfers()
    {
        var descriptor = Enumerable.Range(0, 104).Select(i => (byte)(i * 7)).ToArray(); // the size of a CUDA IPC descriptor
        var options = TestSupport.Options();
        options.DirectTransferDescriptor = descriptor;
        await using var decode = new DecodeSide(unix: false, options: options);
        await using var prefill = new PrefillSide();
        await using var remote = await decode.ConnectAsync();
        Assert.Equal(descriptor, remote.DirectTransferDescriptor);

        var request = new InferenceRequest(new[] { 3, 1, 4, 1, 5, 9, 2, 6, 5 }, SamplingParameters.Greedy with { MaxTokens = 5 });
        var direct = new DirectKvTransport(remote, new InProcessKvTransport(prefill.Executor.BlockStore, decode.Executor.BlockStore));
        var (tokens, _, _) = await prefill.GenerateAsync(remote, direct, request);
        Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);

        await using var plain = new DecodeSide(unix: false);
        await using var plainRemote = await plain.ConnectAsync();
        Assert.Null(plainRemote.DirectTransferDescriptor);
        Assert.Throws<ArgumentOutOfRangeException>(() => new SocketTransportOptions { SharedSecret = TestSupport.Secret, DirectTransferDescriptor = new byte[300] }.Validate());
        await decode.AssertIdleAndLeakFree();
    }

    [Fact]
    public async Task A_worker_that_does_not_accept_direct_transfers_refuses_them_and_keeps_serving()
    {
        await using var decode = new DecodeSide(unix: true);
        await using var prefill = new PrefillSide();
        var request = new InferenceRequest(new[] { 1, 2, 3, 4, 5, 6, 7 }, SamplingParameters.Greedy with { MaxTokens = 4 });
        await using (var remote = await decode.ConnectAsync())
        {
            var direct = new DirectKvTransport(remote, new InProcessKvTransport(prefill.Executor.BlockStore, decode.Executor.BlockStore));
            await Assert.ThrowsAnyAsync<KvTransferException>(() => prefill.GenerateAsync(remote, direct, request));
        }
        await decode.ExpectClosedWith(ProtocolErrorCode.UnexpectedFrameType);

        await using var honest = await decode.ConnectAsync();
        var (tokens, _, _) = await prefill.GenerateAsync(honest, honest.CreateTransport(prefill.Executor.BlockStore), request);
        Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
        await decode.AssertIdleAndLeakFree();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
    }
}
