using System.Diagnostics;
using Disagg.Cuda.Runtime;

namespace Disagg.GpuBench;

/// <summary>The fields every result file starts with: schema, mode, device, commit, command, time, runtime.</summary>
internal static class ReportHeader
{
    public static Dictionary<string, object?> Create(BenchArguments args, TorchRuntimeInfo runtime, string schema) => new()
    {
        ["schema"] = schema,
        ["mode"] = args.Mode,
        ["device"] = Device(runtime, args.Has("--cpu")),
        ["commit"] = args.Get("--commit") ?? Environment.GetEnvironmentVariable("DISAGG_COMMIT") ?? "unknown",
        ["command"] = args.CommandLine,
        ["started_utc"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", System.Globalization.CultureInfo.InvariantCulture),
        ["runtime"] = runtime.ToString(),
    };

    /// <summary>The GPUs' name and count from nvidia-smi when it runs, else what the runtime knows.</summary>
    private static Dictionary<string, object> Device(TorchRuntimeInfo runtime, bool cpu)
    {
        if (cpu) return new() { ["name"] = "cpu", ["count"] = 1, ["source"] = "--cpu", ["cores"] = Environment.ProcessorCount };
        try
        {
            var start = new ProcessStartInfo("nvidia-smi", ["--query-gpu=name", "--format=csv,noheader"]) { RedirectStandardOutput = true, RedirectStandardError = true };
            using var smi = Process.Start(start);
            if (smi is not null)
            {
                string[] names = smi.StandardOutput.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
                smi.WaitForExit(10_000);
                if (smi.ExitCode == 0 && names.Length > 0)
                    return new() { ["name"] = string.Join(" + ", names.Distinct()), ["count"] = names.Length, ["source"] = "nvidia-smi" };
            }
        }
        catch (System.ComponentModel.Win32Exception) { } // no nvidia-smi on this machine
        return new() { ["name"] = "CUDA device (nvidia-smi not available)", ["count"] = runtime.CudaDeviceCount, ["source"] = "torch runtime" };
    }
}
