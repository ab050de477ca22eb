using Microsoft.Extensions.Hosting;

namespace Disagg.Extensions.Hosting;

/// <summary>
/// Drives <see cref="InferenceService"/> with the host: loading starts as the host starts (on a thread-pool thread), start waits
/// for it when <see cref="DisaggregatedInferenceOptions.WaitForModelOnStart"/>; admission closes as soon as the host begins to stop
/// (before other services stop), and the drain runs in <see cref="StopAsync"/>.
/// </summary>
internal sealed class InferenceHostedService(InferenceService service) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken)
    {
        service.BeginLoading();
        return Task.CompletedTask;
    }

    public Task StartAsync(CancellationToken cancellationToken) => service.StartAsync(cancellationToken);

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken)
    {
        service.StopAdmitting();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => service.StopAsync(cancellationToken);

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
