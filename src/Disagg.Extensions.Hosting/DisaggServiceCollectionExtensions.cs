using System.Diagnostics.Metrics;
using Disagg;
using Disagg.Extensions.Hosting;
using Disagg.Extensions.Hosting.Chat;
using Disagg.Extensions.Hosting.HealthChecks;
using Disagg.Extensions.Hosting.Metrics;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers Disagg's in-process inference with a service collection.</summary>
public static class DisaggServiceCollectionExtensions
{
    /// <summary>
    /// Adds in-process LLM inference: <see cref="InferenceService"/> (also as <see cref="IInferenceEngine"/>), an
    /// <see cref="IChatClient"/>, <see cref="DisaggMetrics"/>, and a hosted service that loads the model when the host starts and
    /// drains it when the host stops. Options are validated when the host starts. Calling it again only adds configuration.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets the options (at least <see cref="DisaggregatedInferenceOptions.ModelPath"/>).</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddDisaggregatedInference(this IServiceCollection services, Action<DisaggregatedInferenceOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configure);
        services.Configure(configure);
        return services.AddDisaggregatedInferenceCore();
    }

    /// <summary>
    /// Adds in-process LLM inference (see <see cref="AddDisaggregatedInference(IServiceCollection, Action{DisaggregatedInferenceOptions})"/>)
    /// with options bound from <paramref name="configuration"/>, typically <c>builder.Configuration.GetSection("Disagg")</c>
    /// (<see cref="DisaggregatedInferenceOptions.DefaultSectionName"/>), then adjusted by <paramref name="configure"/>.
    /// </summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The section to bind; its keys are the option names (<c>ModelPath</c>, <c>Scheduler:MaxRunningSequences</c>, ...).</param>
    /// <param name="configure">Adjusts the options after binding; optional.</param>
    /// <returns><paramref name="services"/>, for chaining.</returns>
    public static IServiceCollection AddDisaggregatedInference(this IServiceCollection services, IConfiguration configuration,
        Action<DisaggregatedInferenceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        ArgumentNullException.ThrowIfNull(configuration);
        services.AddOptions<DisaggregatedInferenceOptions>().Bind(configuration);
        if (configure is not null) services.Configure(configure);
        return services.AddDisaggregatedInferenceCore();
    }

    /// <summary>
    /// Adds a health check of the hosted model (see <see cref="InferenceService"/>): unhealthy (<paramref name="failureStatus"/>)
    /// before it is loaded, after a load failure and while stopping; degraded near the queue or KV-cache limits
    /// (<see cref="DisaggregatedInferenceOptions.DegradedQueueRatio"/>, <see cref="DisaggregatedInferenceOptions.DegradedKvCacheUsage"/>);
    /// healthy otherwise. Its data holds KV usage, waiting requests, running sequences and the prefix-cache hit rate.
    /// </summary>
    /// <param name="builder">The health checks builder (<c>services.AddHealthChecks()</c>).</param>
    /// <param name="name">The check's name.</param>
    /// <param name="failureStatus">Status reported when unhealthy; <see cref="HealthStatus.Unhealthy"/> when null.</param>
    /// <param name="tags">Tags to filter checks by (e.g. "ready").</param>
    /// <returns><paramref name="builder"/>, for chaining.</returns>
    public static IHealthChecksBuilder AddDisaggregatedInferenceCheck(this IHealthChecksBuilder builder, string name = "disagg",
        HealthStatus? failureStatus = null, IEnumerable<string>? tags = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        return builder.AddCheck<InferenceHealthCheck>(name, failureStatus, tags ?? []);
    }

    private static IServiceCollection AddDisaggregatedInferenceCore(this IServiceCollection services)
    {
        services.AddOptions<DisaggregatedInferenceOptions>().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DisaggregatedInferenceOptions>, DisaggregatedInferenceOptionsValidator>());
        services.TryAddSingleton(sp => new DisaggMetrics(sp.GetService<IMeterFactory>()));
        services.TryAddSingleton<InferenceService>();
        services.TryAddSingleton<IInferenceEngine>(sp => sp.GetRequiredService<InferenceService>());
        services.TryAddSingleton<DisaggChatClient>();
        services.TryAddSingleton<IChatClient>(sp => sp.GetRequiredService<DisaggChatClient>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, InferenceHostedService>());
        return services;
    }
}
