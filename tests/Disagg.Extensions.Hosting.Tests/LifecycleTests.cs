using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Disagg.Extensions.Hosting.Tests;

public sealed class LifecycleTests
{
    private static InferenceRequest Request(int maxTokens) =>
        new(new[] { 700, 5, 6, 7, 8 }, SamplingParameters.Greedy with { MaxTokens = maxTokens, IgnoreEndOfSequence = true });

    [Fact]
    public async Task Start_loads_the_model_and_the_engine_serves_requests()
    {
        using var host = TestHosts.Build();
        var service = host.Services.GetRequiredService<InferenceService>();
        Assert.Equal(InferenceStatus.NotStarted, service.Status);
        Assert.Empty(service.Engines);
        Assert.Throws<InvalidOperationException>(() => service.Tokenizer);

        await host.StartAsync();

        Assert.Equal(InferenceStatus.Ready, service.Status);
        Assert.True(service.IsReady);
        Assert.Single(service.Engines);
        Assert.Same(service, host.Services.GetRequiredService<IInferenceEngine>());
        var tokens = await host.Services.GetRequiredService<IInferenceEngine>().GenerateAsync(Request(5)).ToListAsync();
        Assert.Equal(5, tokens.Count);
        Assert.Equal(FinishReason.MaxTokens, tokens[^1].Finish);
        await host.StopAsync();
        Assert.Equal(InferenceStatus.Stopped, service.Status);
    }

    [Fact]
    public async Task A_request_made_before_the_model_is_loaded_waits_for_it()
    {
        using var host = TestHosts.Build(o => o.WaitForModelOnStart = false);
        var engine = host.Services.GetRequiredService<IInferenceEngine>();

        var early = engine.GenerateAsync(Request(4)).ToListAsync().AsTask();
        Assert.False(early.IsCompleted);
        await host.StartAsync();
        var tokens = await early;

        Assert.Equal(4, tokens.Count);
        await host.StopAsync();
    }

    [Fact]
    public async Task A_load_failure_fails_start_and_requests_with_a_clear_error()
    {
        string missing = Path.Combine(Path.GetTempPath(), "disagg-no-such-model-" + Guid.NewGuid().ToString("N"));
        using var host = TestHosts.Build(o => o.ModelPath = missing);
        var service = host.Services.GetRequiredService<InferenceService>();

        var start = await Assert.ThrowsAsync<ModelLoadFailedException>(() => host.StartAsync());
        Assert.Contains(missing, start.Message);
        Assert.Equal(InferenceStatus.Failed, service.Status);
        Assert.NotNull(service.LoadError);

        var request = await Assert.ThrowsAsync<ModelLoadFailedException>(async () => await service.GenerateAsync(Request(2)).ToListAsync());
        Assert.Equal(missing, request.ModelPath);
        await host.StopAsync();
    }

    [Fact]
    public async Task Stop_drains_requests_in_flight_and_rejects_new_ones()
    {
        using var host = await TestHosts.StartAsync(o => o.DrainTimeout = TimeSpan.FromMinutes(5));
        var service = host.Services.GetRequiredService<InferenceService>();
        var tokens = service.GenerateAsync(Request(40)).GetAsyncEnumerator();
        Assert.True(await tokens.MoveNextAsync());

        var stopping = host.StopAsync();
        await service.AdmissionClosed;
        Assert.Equal(InferenceStatus.Stopping, service.Status);
        await Assert.ThrowsAsync<EngineStoppedException>(async () => await service.GenerateAsync(Request(2)).ToListAsync());
        Assert.False(stopping.IsCompleted, "stop must wait for the request in flight");

        var rest = new List<GeneratedToken> { tokens.Current };
        while (await tokens.MoveNextAsync()) rest.Add(tokens.Current);
        await tokens.DisposeAsync();
        await stopping;

        Assert.Equal(40, rest.Count);
        Assert.Equal(FinishReason.MaxTokens, rest[^1].Finish);
        Assert.Equal(InferenceStatus.Stopped, service.Status);
        Assert.Equal(0, service.InFlightRequests);
    }

    [Fact]
    public async Task Stop_cancels_requests_still_running_after_the_drain_timeout()
    {
        using var host = await TestHosts.StartAsync(o => o.DrainTimeout = TimeSpan.Zero);
        var service = host.Services.GetRequiredService<InferenceService>();
        var tokens = service.GenerateAsync(Request(200)).GetAsyncEnumerator();
        Assert.True(await tokens.MoveNextAsync());

        await host.StopAsync();

        var error = await Assert.ThrowsAsync<EngineStoppedException>(async () => { while (await tokens.MoveNextAsync()) { } });
        Assert.Contains("drain timeout", error.Message);
        await tokens.DisposeAsync();
        Assert.Equal(InferenceStatus.Stopped, service.Status);
        Assert.Equal(0, service.InFlightRequests);
    }

    [Fact]
    public async Task A_request_waiting_for_a_host_that_stops_before_loading_fails()
    {
        using var host = TestHosts.Build(o => o.WaitForModelOnStart = false);
        var service = host.Services.GetRequiredService<InferenceService>();
        var waiting = service.GenerateAsync(Request(2)).ToListAsync().AsTask();

        await service.StopAsync();

        await Assert.ThrowsAsync<EngineStoppedException>(() => waiting);
        Assert.Equal(InferenceStatus.Stopped, service.Status);
    }
}
