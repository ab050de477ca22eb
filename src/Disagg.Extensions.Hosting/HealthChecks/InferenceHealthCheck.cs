using System.Globalization;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Disagg.Extensions.Hosting.HealthChecks;

/// <summary>
/// Health of the hosted model: Unhealthy (the registration's failure status) until it is loaded, after a load failure (with the
/// error) and once stopping; Degraded when the waiting queue or the KV cache is near its limit; Healthy otherwise. The result's
/// data holds the load: KV usage, free and total blocks, waiting requests, running sequences and the prefix-cache hit rate.
/// </summary>
internal sealed class InferenceHealthCheck(InferenceService service) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(context);
        var failure = context.Registration.FailureStatus;
        var status = service.Status;
        var data = new Dictionary<string, object>
        {
            ["model"] = service.ModelId,
            ["status"] = status.ToString(),
            ["mode"] = service.Options.Mode.ToString(),
        };
        switch (status)
        {
            case InferenceStatus.NotStarted:
            case InferenceStatus.Loading:
                return Task.FromResult(new HealthCheckResult(failure, $"Model '{service.ModelId}' is not loaded yet ({status}).", data: data));
            case InferenceStatus.Failed:
                return Task.FromResult(new HealthCheckResult(failure,
                    $"Model '{service.ModelId}' failed to load: {service.LoadError?.Message}", service.LoadError, data));
            case InferenceStatus.Stopping:
            case InferenceStatus.Stopped:
                return Task.FromResult(new HealthCheckResult(failure, $"Model '{service.ModelId}' is {status.ToString().ToLowerInvariant()}.", data: data));
        }

        var load = service.GetLoad();
        data["kv_cache_usage"] = load.KvUsage;
        data["free_kv_blocks"] = load.FreeKvBlocks;
        data["total_kv_blocks"] = load.TotalKvBlocks;
        data["waiting_requests"] = load.WaitingRequests;
        data["running_sequences"] = load.RunningSequences;
        data["in_flight_requests"] = service.InFlightRequests;
        if (service.Options.Scheduler.EnablePrefixCaching) data["prefix_cache_hit_rate"] = service.PrefixCacheStatistics.HitRate;

        int waitingCapacity = service.Options.Scheduler.MaxWaitingRequests * Math.Max(1, service.Engines.Count);
        var (health, reason) = Evaluate(load, waitingCapacity, service.Options);
        return Task.FromResult(new HealthCheckResult(health, reason ?? $"Model '{service.ModelId}' is serving.", data: data));
    }

    /// <summary>Healthy or Degraded for a loaded model's <paramref name="load"/>, with the reason when Degraded.</summary>
    internal static (HealthStatus Status, string? Reason) Evaluate(EngineLoad load, int waitingCapacity, DisaggregatedInferenceOptions options)
    {
        var reasons = new List<string>(2);
        double queue = waitingCapacity <= 0 ? 0 : (double)load.WaitingRequests / waitingCapacity;
        if (queue >= options.DegradedQueueRatio)
        {
            reasons.Add(string.Create(CultureInfo.InvariantCulture,
                $"{load.WaitingRequests} of {waitingCapacity} waiting slots are taken ({queue:P0}, threshold {options.DegradedQueueRatio:P0})"));
        }
        // With prefix caching, cached (evictable) blocks count as used, so a full pool is normal; it is pressure only while requests wait.
        bool kvMatters = !options.Scheduler.EnablePrefixCaching || load.WaitingRequests > 0;
        if (kvMatters && load.TotalKvBlocks > 0 && load.KvUsage >= options.DegradedKvCacheUsage)
        {
            reasons.Add(string.Create(CultureInfo.InvariantCulture,
                $"KV cache {load.KvUsage:P0} used ({load.FreeKvBlocks} of {load.TotalKvBlocks} blocks free, threshold {options.DegradedKvCacheUsage:P0})"));
        }
        return reasons.Count == 0 ? (HealthStatus.Healthy, null) : (HealthStatus.Degraded, "Near capacity: " + string.Join("; ", reasons) + ".");
    }
}
