using Disagg.Cuda.Native;
using TorchSharp;

namespace Disagg.Cuda.Model;

/// <summary>Measurement hooks for the benchmarks and the device check, kept apart from the decode path itself.</summary>
internal sealed partial class CudaGraphDecoder
{
    /// <summary>For profiling: milliseconds per step of <paramref name="batch"/> (padding rows only) measured five ways:
    /// back-to-back replays (device time), replay then synchronize, upload + replay + synchronize, the same through
    /// <see cref="Run"/> with the argmax read back, and the host time of the replay call alone.</summary>
    internal Dictionary<string, double> Profile(int batch, int count)
    {
        var result = new Dictionary<string, double>();
        int index = GraphFor(batch);
        if (index < 0) return result;
        var graph = _graphs[index];
        var device = _buffers.Logits.device;
        double Time(Action step, bool syncEach)
        {
            step();
            torch.cuda.synchronize(device);
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            for (int i = 0; i < count; i++)
            {
                step();
                if (syncEach) torch.cuda.synchronize(device);
            }
            torch.cuda.synchronize(device);
            return System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds / count;
        }
        result["replay_back_to_back_ms"] = Time(() => NativeCuda.GraphReplay(graph), false);
        result["replay_sync_ms"] = Time(() => NativeCuda.GraphReplay(graph), true);
        result["upload_replay_sync_ms"] = Time(() => { _buffers.Upload([], _sizes[index]); NativeCuda.GraphReplay(graph); }, true);
        result["upload_only_sync_ms"] = Time(() => _buffers.Upload([], _sizes[index]), true);
        result["argmax_read_ms"] = Time(() => { using var a = _buffers.Argmax.narrow(0, 0, batch); using var c = a.cpu(); _ = c.data<long>().ToArray(); }, false);
        long t0 = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < count; i++) NativeCuda.GraphReplay(graph);
        result["replay_call_host_ms"] = System.Diagnostics.Stopwatch.GetElapsedTime(t0).TotalMilliseconds / count;
        torch.cuda.synchronize(device);
        return result;
    }
}
