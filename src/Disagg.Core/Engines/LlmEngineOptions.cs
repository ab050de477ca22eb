using Disagg.Scheduling;

namespace Disagg;

/// <summary>Options of an <see cref="LlmEngine"/>.</summary>
public sealed class LlmEngineOptions
{
    /// <summary>A name for logs, metrics and thread names.</summary>
    public string Name { get; set; } = "engine";

    /// <summary>Batching limits.</summary>
    public SchedulerOptions Scheduler { get; set; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name)) throw new ArgumentException("Name must not be empty.", nameof(Name));
        ArgumentNullException.ThrowIfNull(Scheduler);
        Scheduler.Validate();
    }
}
