using System.Net.Sockets;
using Disagg.Coordination;
using Disagg.Tests.TestModel;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Sockets;

/// <summary>The decode engine in a real child process (tests/Disagg.Transport.Worker), reached over a Unix domain socket.</summary>
public sealed class TwoProcessTests : IAsyncLifetime
{
    private const int WorkerBlocks = 64;
    private WorkerProcess? _worker;

    private string SocketPath => _worker!.Endpoint;

    public async Task InitializeAsync() =>
        _worker = await WorkerProcess.StartAsync(WorkerBlocks, folder => Task.FromResult((Path.Combine(folder, "decode.sock"), new Dictionary<string, string>())));

    public async Task DisposeAsync()
    {
        if (_worker is not null) await _worker.DisposeAsync();
    }

    [Fact]
    public async Task A_decode_engine_in_another_process_produces_the_colocated_tokens_and_releases_everything()
    {
        await using var prefill = new PrefillSide();
        var remote = await RemoteDecodeEngine.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), TestSupport.Options());
        var transport = remote.CreateTransport(prefill.Executor.BlockStore);
        Assert.Equal(prefill.Engine.KvLayout, remote.KvLayout);
        Assert.Equal(WorkerBlocks, remote.GetLoad().TotalKvBlocks);

        var requests = new[]
        {
            new InferenceRequest(new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, SamplingParameters.Greedy with { MaxTokens = 12 }),
            new InferenceRequest(Enumerable.Range(10, 21).ToArray(), new SamplingParameters { Temperature = 0.8f, TopK = 10, Seed = 99, MaxTokens = 16 }),
            new InferenceRequest(new[] { 40, 41 }, new SamplingParameters { Temperature = 1.1f, TopP = 0.9f, MaxTokens = 20 }),
        };
        var outputs = await Task.WhenAll(requests.Select(async r => (await prefill.GenerateAsync(remote, transport, r)).Tokens));
        for (int i = 0; i < requests.Length; i++)
            Assert.Equal(ToyModel.ReferenceGenerate(requests[i], TestSupport.Layers, [3], 4096), outputs[i]);

        // Cancel one decode midway, and leave one reservation behind when disconnecting.
        var endless = new InferenceRequest(new[] { 7, 7, 7 }, SamplingParameters.Greedy with { MaxTokens = 1000, IgnoreEndOfSequence = true });
        using (var reservation = await remote.ReserveAsync(endless))
        using (var prefilled = await prefill.Engine.PrefillAsync(endless))
        using (var cts = new CancellationTokenSource())
        {
            await transport.TransferAsync(prefilled.Kv, reservation);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
            {
                await foreach (var t in remote.DecodeAsync(reservation, prefilled.FirstToken, cts.Token))
                    if (t.Index == 5) cts.Cancel();
            });
        }
        _ = await remote.ReserveAsync(new InferenceRequest(Enumerable.Range(1, 30).ToArray()));
        Assert.True((await _worker!.StatsAsync()).Free < WorkerBlocks);
        await remote.DisposeAsync();

        await _worker!.AssertHoldsNothing();
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
    }

    [Fact]
    public async Task A_worker_that_dies_fails_the_client_with_a_typed_error()
    {
        await using var prefill = new PrefillSide();
        await using var remote = await RemoteDecodeEngine.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), TestSupport.Options());
        // 60 of the worker's 64 blocks, then a request that needs 8 more: it waits inside the worker for memory.
        var big = new InferenceRequest(Enumerable.Range(0, 240).Select(i => i % 40 + 1).ToArray());
        using var held = await remote.ReserveAsync(big);
        var waiting = remote.ReserveAsync(new InferenceRequest(Enumerable.Range(1, 32).ToArray())).AsTask();
        await TestSupport.WaitUntil(async () => (await _worker!.StatsAsync()).Waiting == 1, () => "The second reservation never queued in the worker.");
        Assert.False(waiting.IsCompleted);

        _worker!.Kill();
        var error = await Assert.ThrowsAsync<DisaggProtocolException>(() => waiting);
        Assert.Equal(ProtocolErrorCode.ConnectionClosed, error.Code);
        Assert.False(remote.IsConnected);
        using var prefilled = await prefill.Engine.PrefillAsync(big);
        var transfer = await Assert.ThrowsAnyAsync<KvTransferException>(async () =>
            await remote.CreateTransport(prefill.Executor.BlockStore).TransferAsync(prefilled.Kv, held));
        Assert.Equal(ProtocolErrorCode.ConnectionClosed, Assert.IsType<DisaggProtocolException>(transfer).Code);
    }

    /// <summary>
    /// The worker process dies in the middle of a decode (it is killed while its engine is held in a step, after a few tokens
    /// reached the caller): the request continues on the prefill engine with exactly the tokens it would have had, or, without
    /// recovery, fails with a typed error; the prefill side keeps no block.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    [Trait("Category", "Reliability")]
    public async Task A_worker_killed_mid_decode_is_recovered_on_the_prefill_engine_or_fails_typed(bool recover)
    {
        await using var prefill = new PrefillSide();
        await using var remote = await RemoteDecodeEngine.ConnectAsync(new UnixDomainSocketEndPoint(SocketPath), TestSupport.Options());
        var coordinator = new DisaggregatedEngine([prefill.Engine], [remote], (_, _) => remote.CreateTransport(prefill.Executor.BlockStore),
            new DisaggregationOptions { LocalPrefillMaxUncachedTokens = 0, RecoverLocally = recover });
        var request = new InferenceRequest(Enumerable.Range(1, 20).ToArray(),
            new SamplingParameters { Temperature = 0.7f, TopK = 12, Seed = 11, MaxTokens = 40, IgnoreEndOfSequence = true });
        const int workerSteps = 4;
        Assert.Equal("HANGING", await _worker!.AskAsync($"hang-after {workerSteps}"));

        var stream = coordinator.GenerateAsync(request).GetAsyncEnumerator();
        var tokens = new List<int>();
        for (int i = 0; i <= workerSteps; i++) // the prefill's first token, then one per worker step
        {
            Assert.True(await stream.MoveNextAsync());
            tokens.Add(stream.Current.TokenId);
        }
        _worker.Kill();
        if (recover)
        {
            while (await stream.MoveNextAsync()) tokens.Add(stream.Current.TokenId);
            Assert.Equal(ToyModel.ReferenceGenerate(request, TestSupport.Layers, [3], 4096), tokens);
            Assert.Equal(1, coordinator.RecoveryCount);
        }
        else
        {
            var error = await Assert.ThrowsAsync<DisaggProtocolException>(async () => { while (await stream.MoveNextAsync()) { } });
            Assert.Equal(ProtocolErrorCode.ConnectionClosed, error.Code);
            Assert.Equal(workerSteps + 1, tokens.Count);
        }
        await stream.DisposeAsync();
        Assert.False(remote.IsConnected);
        await TestSupport.AssertAllBlocksReturn(prefill.Engine);
    }
}
