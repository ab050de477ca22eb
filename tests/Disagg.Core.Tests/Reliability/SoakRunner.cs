using System.Collections.Concurrent;
using System.Diagnostics;
using Disagg.Coordination;

namespace Disagg.Tests.Reliability;

/// <summary>
/// Pushes many requests through a disaggregated pipeline — prefill engine, fault-injecting transport, decode engine, under a
/// <see cref="DisaggregatedEngine"/> that recovers locally — with random cancellations at every point and random faults, then
/// checks that nothing was lost and nothing leaked. Works over any <see cref="LlmEngine"/>s (the toy model in CI, a real
/// model in tests/Disagg.Soak).
/// </summary>
internal sealed class SoakRunner
{
    private readonly IReadOnlyList<LlmEngine> _engines;
    private readonly FaultyPrefillWorker _prefill;
    private readonly FaultInjectingKvTransport _transport;
    private readonly DisaggregatedEngine _coordinator;
    private readonly SoakOptions _options;
    private readonly Func<Random, InferenceRequest> _newRequest;
    private readonly Func<InferenceRequest, ValueTask<IReadOnlyList<int>?>> _reference;
    private readonly ConcurrentDictionary<RequestId, (SoakPlan Plan, CancellationTokenSource Cancel)> _inFlight = new();

    /// <param name="prefill">The prefill engine.</param>
    /// <param name="decode">The decode engine (it also runs short and recovered requests alone).</param>
    /// <param name="transport">The KV transport between them.</param>
    /// <param name="newRequest">Draws a request.</param>
    /// <param name="reference">The tokens a completed request must have produced, or null to skip checking it.</param>
    /// <param name="options">Rates and sizes.</param>
    public SoakRunner(LlmEngine prefill, LlmEngine decode, IKvTransport transport, Func<Random, InferenceRequest> newRequest,
        Func<InferenceRequest, ValueTask<IReadOnlyList<int>?>> reference, SoakOptions options)
    {
        _engines = [prefill, decode];
        _options = options;
        _newRequest = newRequest;
        _reference = reference;
        _prefill = new FaultyPrefillWorker(prefill, r => PlanOf(r)?.PrefillGone == true) { Started = r => CancelAt(r, CancelPoint.MidPrefill) };
        _transport = new FaultInjectingKvTransport(transport, r => PlanOf(r)?.Transfer ?? TransferFault.None) { Starting = r => CancelAt(r, CancelPoint.MidTransfer) };
        _coordinator = new DisaggregatedEngine([_prefill], [decode], (_, _) => _transport, new DisaggregationOptions
        {
            LocalPrefillMaxUncachedTokens = options.LocalPrefillMaxUncachedTokens,
            KvLease = options.KvLease,
        });
    }

    public DisaggregatedEngine Coordinator => _coordinator;

    /// <summary>Runs <paramref name="requests"/> requests (request i draws everything from seed + i), then waits until every engine is idle.</summary>
    public async Task<SoakSummary> RunAsync(int requests, int firstIndex = 0)
    {
        // Earlier work's garbage is finalized first, so that only this run's unobserved task exceptions are counted.
        GC.Collect();
        GC.WaitForPendingFinalizers();
        long unobserved = 0;
        EventHandler<UnobservedTaskExceptionEventArgs> count = (_, _) => Interlocked.Increment(ref unobserved);
        TaskScheduler.UnobservedTaskException += count;
        var clock = Stopwatch.StartNew();
        var outcomes = new ConcurrentBag<Outcome>();
        var cancelledAt = new ConcurrentDictionary<CancelPoint, long>();
        long recoveriesBefore = _coordinator.RecoveryCount, leasesBefore = _coordinator.ExpiredKvLeaseCount;
        long dropsBefore = _transport.Drops, stallsBefore = _transport.Stalls, goneBefore = _prefill.GoneCount;
        int next = firstIndex - 1, last = firstIndex + requests - 1;
        var workers = Enumerable.Range(0, _options.Concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) <= last) outcomes.Add(await RunOneAsync(i, cancelledAt));
        }));
        await Task.WhenAll(workers);
        int leaked = await WaitForIdleAsync();
        clock.Stop();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        TaskScheduler.UnobservedTaskException -= count;

        var all = outcomes.ToArray();
        return new SoakSummary
        {
            Requests = requests,
            Completed = all.Count(o => o.Kind == OutcomeKind.Completed),
            Cancelled = all.Count(o => o.Kind == OutcomeKind.Cancelled),
            FailedTyped = all.Count(o => o.Kind == OutcomeKind.FailedTyped),
            Lost = all.Count(o => o.Kind == OutcomeKind.Lost),
            Diverged = all.Count(o => o.Kind == OutcomeKind.Diverged),
            TokensVerified = all.Sum(o => o.Verified),
            TokensDelivered = all.Sum(o => (long)o.Tokens),
            CancelledAt = cancelledAt.OrderBy(kv => kv.Key).ToDictionary(kv => kv.Key.ToString(), kv => kv.Value),
            FaultsInjected = new Dictionary<string, long>
            {
                ["transfer dropped"] = _transport.Drops - dropsBefore,
                ["transfer stalled"] = _transport.Stalls - stallsBefore,
                ["prefill worker gone"] = _prefill.GoneCount - goneBefore,
            },
            Recoveries = _coordinator.RecoveryCount - recoveriesBefore,
            ExpiredKvLeases = _coordinator.ExpiredKvLeaseCount - leasesBefore,
            LeakedBlocks = leaked,
            UnobservedTaskExceptions = Interlocked.Read(ref unobserved),
            Seconds = clock.Elapsed.TotalSeconds,
            LostExamples = [.. all.Where(o => o.Kind == OutcomeKind.Lost).Select(o => o.Detail!).Take(5)],
            DivergedExamples = [.. all.Where(o => o.Kind == OutcomeKind.Diverged).Select(o => o.Detail!).Take(5)],
        };
    }

    private enum OutcomeKind { Completed, Cancelled, FailedTyped, Diverged, Lost }

    private readonly record struct Outcome(OutcomeKind Kind, int Tokens, int Verified, string? Detail = null);

    private SoakPlan? PlanOf(InferenceRequest request) => _inFlight.TryGetValue(request.Id, out var entry) ? entry.Plan : null;

    private void CancelAt(InferenceRequest request, CancelPoint point)
    {
        if (_inFlight.TryGetValue(request.Id, out var entry) && entry.Plan.Cancel == point) entry.Cancel.Cancel();
    }

    private async Task<Outcome> RunOneAsync(int index, ConcurrentDictionary<CancelPoint, long> cancelledAt)
    {
        var random = new Random(HashCode.Combine(_options.Seed, index));
        var request = _newRequest(random);
        var plan = SoakPlan.Draw(random, _options);
        using var cancel = new CancellationTokenSource();
        _inFlight[request.Id] = (plan, cancel);
        if (plan.Cancel == CancelPoint.BeforeStart) cancel.Cancel();
        var tokens = new List<int>();
        try
        {
            var run = Consume(request, plan, cancel, tokens);
            await run.WaitAsync(_options.RequestBound);
            if (!run.Result) return new Outcome(OutcomeKind.Lost, tokens.Count, 0, $"{request.Id}: the stream ended without a finish reason");
            var expected = await _reference(request);
            if (expected is null) return new Outcome(OutcomeKind.Completed, tokens.Count, 0);
            if (expected.SequenceEqual(tokens)) return new Outcome(OutcomeKind.Completed, tokens.Count, tokens.Count);
            // Completed with a finish reason, but not the reference's tokens: a wrong stream, not a missing one.
            int first = 0;
            while (first < Math.Min(tokens.Count, expected.Count) && tokens[first] == expected[first]) first++;
            return new Outcome(OutcomeKind.Diverged, tokens.Count, 0,
                $"{request.Id} ({plan}): tokens differ from index {first}: [{string.Join(",", tokens)}], expected [{string.Join(",", expected)}]");
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            cancelledAt.AddOrUpdate(plan.Cancel, 1, (_, n) => n + 1);
            return new Outcome(OutcomeKind.Cancelled, tokens.Count, 0);
        }
        catch (TimeoutException)
        {
            cancel.Cancel(); // a hang: counted lost; cancelling it lets the engines release what it holds
            return new Outcome(OutcomeKind.Lost, tokens.Count, 0, $"{request.Id} ({plan}): no end within {_options.RequestBound}");
        }
        catch (DisaggException ex)
        {
            return new Outcome(OutcomeKind.FailedTyped, tokens.Count, 0, $"{request.Id} ({plan}): {ex.GetType().Name}: {ex.Message}");
        }
        catch (Exception ex)
        {
            return new Outcome(OutcomeKind.Lost, tokens.Count, 0, $"{request.Id} ({plan}): {ex.GetType().Name}: {ex.Message}");
        }
        finally
        {
            _inFlight.TryRemove(request.Id, out _);
        }
    }

    /// <summary>Reads the stream, checking indices and the finish flag; true when it ended with its last token.</summary>
    private async Task<bool> Consume(InferenceRequest request, SoakPlan plan, CancellationTokenSource cancel, List<int> tokens)
    {
        await foreach (var token in _coordinator.GenerateAsync(request, cancel.Token))
        {
            if (token.Index != tokens.Count) throw new InvalidDataException($"Token index {token.Index} arrived where {tokens.Count} was due.");
            tokens.Add(token.TokenId);
            if (plan.Cancel == CancelPoint.MidDecode && tokens.Count == plan.CancelAfterTokens) cancel.Cancel();
            if (token.IsLast) return true;
        }
        return false;
    }

    /// <summary>Waits (bounded) until no engine holds a sequence; returns the blocks neither free nor held by a prefix cache.</summary>
    private async Task<int> WaitForIdleAsync()
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            int leaked = 0;
            bool busy = false;
            foreach (var engine in _engines)
            {
                var load = engine.GetLoad();
                busy |= load.RunningSequences != 0 || load.WaitingRequests != 0;
                leaked += engine.Allocator.Capacity - engine.Allocator.FreeCount - engine.PrefixCachedBlockCount;
            }
            if ((leaked == 0 && !busy) || deadline.Elapsed > TimeSpan.FromSeconds(30)) return leaked;
            await Task.Delay(1);
        }
    }
}
