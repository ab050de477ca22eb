using Disagg.Extensions.Hosting.HealthChecks;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;

namespace Disagg.Extensions.Hosting.Tests;

public sealed class HealthCheckTests
{
    private static Task<HealthReport> CheckAsync(IHost host) => host.Services.GetRequiredService<HealthCheckService>().CheckHealthAsync();

    [Fact]
    public async Task Unhealthy_before_start_healthy_with_load_data_once_loaded_unhealthy_after_stop()
    {
        using var host = TestHosts.Build();

        var before = (await CheckAsync(host)).Entries["disagg"];
        Assert.Equal(HealthStatus.Unhealthy, before.Status);
        Assert.Equal("NotStarted", before.Data["status"]);

        await host.StartAsync();
        var ready = (await CheckAsync(host)).Entries["disagg"];
        Assert.Equal(HealthStatus.Healthy, ready.Status);
        Assert.Equal("Ready", ready.Data["status"]);
        Assert.Equal(64, ready.Data["total_kv_blocks"]);
        // Counts are snapshots the engine publishes once per loop turn (the warm-up may still show as running for a moment).
        Assert.InRange((int)ready.Data["waiting_requests"], 0, 1);
        Assert.InRange((int)ready.Data["running_sequences"], 0, 1);
        Assert.IsType<double>(ready.Data["kv_cache_usage"]);
        Assert.InRange((double)ready.Data["prefix_cache_hit_rate"], 0, 1);

        await host.StopAsync();
        var stopped = (await CheckAsync(host)).Entries["disagg"];
        Assert.Equal(HealthStatus.Unhealthy, stopped.Status);
        Assert.Equal("Stopped", stopped.Data["status"]);
    }

    [Fact]
    public async Task Unhealthy_with_the_error_after_a_load_failure()
    {
        string empty = Directory.CreateTempSubdirectory("disagg-empty-model-").FullName;
        try
        {
            using var host = TestHosts.Build(o =>
            {
                o.ModelPath = empty;
                o.WaitForModelOnStart = false;
            });
            var service = host.Services.GetRequiredService<InferenceService>();

            await host.StartAsync(); // does not wait for the model
            await Assert.ThrowsAsync<ModelLoadFailedException>(() => service.WaitUntilReadyAsync());
            var entry = (await CheckAsync(host)).Entries["disagg"];

            Assert.Equal(HealthStatus.Unhealthy, entry.Status);
            Assert.Equal("Failed", entry.Data["status"]);
            Assert.NotNull(entry.Exception);
            Assert.Same(service.LoadError, entry.Exception);
            Assert.Contains("failed to load", entry.Description);
            await host.StopAsync();
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public void Degraded_near_the_queue_limit()
    {
        var options = new DisaggregatedInferenceOptions { DegradedQueueRatio = 0.5 };
        var (status, reason) = InferenceHealthCheck.Evaluate(new EngineLoad(WaitingRequests: 50, RunningSequences: 8, FreeKvBlocks: 90, TotalKvBlocks: 100), 100, options);
        Assert.Equal(HealthStatus.Degraded, status);
        Assert.Contains("waiting", reason);

        (status, _) = InferenceHealthCheck.Evaluate(new EngineLoad(49, 8, 90, 100), 100, options);
        Assert.Equal(HealthStatus.Healthy, status);
    }

    [Fact]
    public void Degraded_near_the_KV_limit_counting_cached_blocks_only_while_requests_wait()
    {
        var noCache = new DisaggregatedInferenceOptions { DegradedKvCacheUsage = 0.9 };
        noCache.Scheduler.EnablePrefixCaching = false;
        var full = new EngineLoad(WaitingRequests: 0, RunningSequences: 3, FreeKvBlocks: 5, TotalKvBlocks: 100);
        var (status, reason) = InferenceHealthCheck.Evaluate(full, 4096, noCache);
        Assert.Equal(HealthStatus.Degraded, status);
        Assert.Contains("KV cache", reason);

        var cached = new DisaggregatedInferenceOptions { DegradedKvCacheUsage = 0.9 };
        Assert.Equal(HealthStatus.Healthy, InferenceHealthCheck.Evaluate(full, 4096, cached).Status);
        Assert.Equal(HealthStatus.Degraded, InferenceHealthCheck.Evaluate(full with { WaitingRequests = 1 }, 4096, cached).Status);
        Assert.Equal(HealthStatus.Healthy, InferenceHealthCheck.Evaluate(new EngineLoad(0, 3, 50, 100), 4096, noCache).Status);
    }
}
