namespace Disagg.GpuBench;

/// <summary>
/// Lends a loaded model to one engine after another without letting the engine dispose it: every serving run gets a fresh
/// engine (empty queues, empty prefix cache) over weights loaded once per device. Runs must not overlap on one executor.
/// </summary>
internal sealed class SharedExecutor(IModelExecutor inner) : DelegatingExecutor(inner)
{
    public override void Dispose() { } // the owner disposes the inner executor once, at the end
}
