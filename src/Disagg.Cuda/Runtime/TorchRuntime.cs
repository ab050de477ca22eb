using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;

namespace Disagg.Cuda.Runtime;

/// <summary>Which libtorch backend to initialise.</summary>
public enum TorchBackend
{
    /// <summary>CPU only (TorchSharp-cpu, or any libtorch).</summary>
    Cpu,

    /// <summary>CUDA: TorchSharp-cuda-* packages, or an existing PyTorch install's libtorch.</summary>
    Cuda,
}

/// <summary>What <see cref="TorchRuntime.Initialize"/> loaded.</summary>
/// <param name="Backend">The backend initialised.</param>
/// <param name="LibTorchSharpPath">The TorchSharp native library in use (a relaxed private copy when <paramref name="RelaxedGlibcxx"/>).</param>
/// <param name="LibTorchDirectory">The PyTorch <c>torch/lib</c> folder used, or null for the libtorch of the TorchSharp packages.</param>
/// <param name="RelaxedGlibcxx">The GLIBCXX_3.4.32 requirement was relaxed because this machine's C++ runtime lacks it.</param>
/// <param name="CudaDeviceCount">CUDA devices visible (0 on the CPU backend).</param>
public sealed record TorchRuntimeInfo(TorchBackend Backend, string LibTorchSharpPath, string? LibTorchDirectory, bool RelaxedGlibcxx, int CudaDeviceCount);

/// <summary>libtorch could not be loaded or initialised. The message says what was tried.</summary>
public sealed class TorchRuntimeException : DisaggException
{
    /// <summary>Creates the exception.</summary>
    public TorchRuntimeException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>
/// Loads libtorch and TorchSharp's native library before anything else touches TorchSharp, so that a host needs no manual
/// set-up on Linux:
/// <list type="bullet">
/// <item>On C++ runtimes older than GCC 13 (Debian 12, Ubuntu 22.04), TorchSharp 0.107's <c>libLibTorchSharp.so</c> fails to load
/// because it asks for <c>GLIBCXX_3.4.32</c> for one symbol. Disagg then writes a private copy with that one requirement relaxed
/// (<see cref="ElfVersionPatch"/>) into a cache folder, loads <c>libdisagg_compat.so</c> (built from <c>native/compat</c>) to provide
/// the symbol, and points TorchSharp at the copy. Installed files are never modified.</item>
/// <item>"Bring your own libtorch": with <see cref="LibTorchDirectoryVariable"/> set, or for CUDA when no TorchSharp-cuda package is
/// present, the libtorch of an existing PyTorch install is used (found by asking <c>python3</c> where torch lives).</item>
/// </list>
/// Call <see cref="Initialize"/> once per process before any other TorchSharp use; <see cref="Model.TorchModelExecutor"/> does.
/// Thread-safe and idempotent.
/// </summary>
public static partial class TorchRuntime
{
    /// <summary>Environment variable naming a PyTorch <c>torch/lib</c> folder to load libtorch from.</summary>
    public const string LibTorchDirectoryVariable = "DISAGG_LIBTORCH_DIR";

    /// <summary>Environment variable naming the folder for the relaxed copy of TorchSharp's native library (default: the user's cache folder).</summary>
    public const string CacheDirectoryVariable = "DISAGG_CACHE_DIR";

    private const string NeededVersion = "GLIBCXX_3.4.32", RelaxedSymbol = "_ZSt21ios_base_library_initv";
    private const string CompatLibrary = "libdisagg_compat.so";
    private static readonly string[] LibTorchFiles = ["libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so"];
    private static readonly Lock Gate = new();
    private static readonly Dictionary<string, IntPtr> Redirects = new(StringComparer.Ordinal);
    private static TorchRuntimeInfo? _current;

    /// <summary>What was loaded, or null before <see cref="Initialize"/>.</summary>
    public static TorchRuntimeInfo? Current => _current;

    /// <summary>
    /// Loads and initialises libtorch for <paramref name="backend"/>. <paramref name="libTorchDirectory"/> (or the
    /// <see cref="LibTorchDirectoryVariable"/> environment variable) names a PyTorch <c>torch/lib</c> folder to use instead of
    /// the TorchSharp packages' libtorch. Later calls return the first result; asking for CUDA after a CPU-only start
    /// initialises CUDA if the loaded libtorch has it.
    /// </summary>
    /// <exception cref="TorchRuntimeException">libtorch could not be loaded; the message lists what was tried.</exception>
    public static TorchRuntimeInfo Initialize(TorchBackend backend = TorchBackend.Cpu, string? libTorchDirectory = null)
    {
        lock (Gate)
        {
            if (_current is { } current)
            {
                if (backend == TorchBackend.Cuda && current.Backend == TorchBackend.Cpu)
                    _current = current = current with { Backend = TorchBackend.Cuda, CudaDeviceCount = InitializeCuda(new StringBuilder()) };
                return current;
            }

            var trace = new StringBuilder();
            try
            {
                string? byo = libTorchDirectory ?? NullIfEmpty(Environment.GetEnvironmentVariable(LibTorchDirectoryVariable));
                if (byo is null && backend == TorchBackend.Cuda && OperatingSystem.IsLinux() && FindNative("libtorch_cuda.so") is null)
                    byo = AskPythonForTorchLib(trace);
                if (byo is not null) PreloadLibTorch(byo, trace);

                var (path, handle, relaxed) = LoadLibTorchSharp(trace);
                Redirects["LibTorchSharp"] = handle;
                NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, (name, _, _) => Redirects.GetValueOrDefault(name));

                int cudaDevices = 0;
                if (backend == TorchBackend.Cuda) cudaDevices = InitializeCuda(trace);
                else torch.InitializeDeviceType(DeviceType.CPU);
                return _current = new TorchRuntimeInfo(backend, path, byo, relaxed, cudaDevices);
            }
            catch (Exception e) when (e is not TorchRuntimeException)
            {
                throw new TorchRuntimeException($"Could not initialise libtorch ({backend}): {e.Message}\nWhat was tried:\n{trace}", e);
            }
        }
    }

    private static int InitializeCuda(StringBuilder trace)
    {
        torch.InitializeDeviceType(DeviceType.CUDA);
        if (!torch.cuda.is_available())
            throw new TorchRuntimeException($"libtorch loaded, but CUDA is not available (no GPU, no driver, or a CPU-only libtorch).\n{trace}");
        return torch.cuda.device_count();
    }

    /// <summary>Loads PyTorch's libraries by full path, in dependency order, and sends TorchSharp's lookups for them there.</summary>
    private static void PreloadLibTorch(string directory, StringBuilder trace)
    {
        if (!File.Exists(Path.Combine(directory, "libtorch_cpu.so")))
            throw new TorchRuntimeException($"'{directory}' holds no libtorch_cpu.so; {LibTorchDirectoryVariable} must name PyTorch's torch/lib folder.");
        foreach (string file in LibTorchFiles)
        {
            string path = Path.Combine(directory, file);
            if (!File.Exists(path)) continue;
            trace.AppendLine($"  load {path}");
            var handle = NativeLibrary.Load(path);
            Redirects[file["lib".Length..^".so".Length]] = handle; // "torch_cpu", "torch_cuda", "c10", ...
        }
    }

    private static (string Path, IntPtr Handle, bool Relaxed) LoadLibTorchSharp(StringBuilder trace)
    {
        string name = OperatingSystem.IsWindows() ? "LibTorchSharp.dll" : OperatingSystem.IsMacOS() ? "libLibTorchSharp.dylib" : "libLibTorchSharp.so";
        string original = FindNative(name)
            ?? throw new TorchRuntimeException($"{name} was not found next to the app (searched: {string.Join(", ", ProbeDirectories())}). Reference TorchSharp-cpu or a TorchSharp-cuda-* package.");
        trace.AppendLine($"  load {original}");
        try
        {
            return (original, NativeLibrary.Load(original), false);
        }
        catch (DllNotFoundException e) when (OperatingSystem.IsLinux() && e.Message.Contains(NeededVersion, StringComparison.Ordinal))
        {
            trace.AppendLine($"    failed: {e.Message.Trim()}");
        }

        // This C++ runtime predates GCC 13: relax the one requirement in a private copy, and provide the symbol.
        string compat = FindNative(CompatLibrary)
            ?? throw new TorchRuntimeException($"{CompatLibrary} was not found (searched: {string.Join(", ", ProbeDirectories())}); it is built from native/compat by Disagg.Cuda's build (needs g++).");
        trace.AppendLine($"  load {compat} (global)");
        if (DlOpen(compat, RtldNow | RtldGlobal) == IntPtr.Zero)
            throw new TorchRuntimeException($"Could not load {compat}: {Marshal.PtrToStringUTF8(DlError())}");

        string relaxed = WriteRelaxedCopy(original, trace);
        // The copy lives elsewhere, so its $ORIGIN no longer finds libtorch: load the neighbours of the original first.
        foreach (string file in LibTorchFiles)
        {
            string? dependency = FindNative(file);
            if (dependency is null || Redirects.ContainsKey(file["lib".Length..^".so".Length])) continue;
            trace.AppendLine($"  load {dependency}");
            NativeLibrary.Load(dependency);
        }
        trace.AppendLine($"  load {relaxed}");
        return (relaxed, NativeLibrary.Load(relaxed), true);
    }

    private static string WriteRelaxedCopy(string original, StringBuilder trace)
    {
        byte[] bytes = File.ReadAllBytes(original);
        string hash = Convert.ToHexStringLower(SHA256.HashData(bytes))[..16];
        string directory = CacheDirectory();
        string target = Path.Combine(directory, $"libLibTorchSharp.{hash}.relaxed.so");
        if (File.Exists(target) && ElfVersionPatch.Inspect(File.ReadAllBytes(target), NeededVersion) is { AlreadyWeak: true, Symbols.Count: 0 })
        {
            trace.AppendLine($"  reuse {target}");
            return target;
        }
        if (!ElfVersionPatch.Relax(bytes, NeededVersion, new HashSet<string> { RelaxedSymbol }))
            throw new TorchRuntimeException($"{original} failed to load, but does not need {NeededVersion}; the cause is elsewhere.");
        Directory.CreateDirectory(directory);
        string temp = Path.Combine(directory, $".{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, target, overwrite: true); // atomic: a concurrent process sees the old file or the whole new one
        trace.AppendLine($"  wrote {target} ({NeededVersion} relaxed for {RelaxedSymbol})");
        return target;
    }

    private static string CacheDirectory()
    {
        string? configured = NullIfEmpty(Environment.GetEnvironmentVariable(CacheDirectoryVariable));
        if (configured is not null) return configured;
        string? xdg = NullIfEmpty(Environment.GetEnvironmentVariable("XDG_CACHE_HOME"));
        string home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        string root = xdg ?? (string.IsNullOrEmpty(home) ? Path.GetTempPath() : Path.Combine(home, ".cache"));
        return Path.Combine(root, "disagg", "native");
    }

    private static string? AskPythonForTorchLib(StringBuilder trace)
    {
        trace.AppendLine("  ask python3 where torch lives");
        try
        {
            var start = new ProcessStartInfo("python3", ["-c", "import os, torch; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using var process = Process.Start(start);
            if (process is null) return null;
            string output = process.StandardOutput.ReadToEnd().Trim();
            if (!process.WaitForExit(60_000) || process.ExitCode != 0 || !Directory.Exists(output))
            {
                trace.AppendLine("    python3 has no torch");
                return null;
            }
            trace.AppendLine($"    {output}");
            return output;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            trace.AppendLine($"    no python3: {e.Message}");
            return null;
        }
    }

    /// <summary>Where .NET itself looks for an app's native libraries, plus the usual runtimes/RID/native folders.</summary>
    internal static IEnumerable<string> ProbeDirectories()
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        string rid = $"{(OperatingSystem.IsWindows() ? "win" : OperatingSystem.IsMacOS() ? "osx" : "linux")}-{RuntimeInformation.ProcessArchitecture.ToString().ToLowerInvariant()}";
        var roots = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string dirs)
            roots.AddRange(dirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        roots.Add(AppContext.BaseDirectory);
        roots.Add(Path.GetDirectoryName(typeof(TorchRuntime).Assembly.Location) ?? "");
        roots.Add(Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? "");
        foreach (string root in roots.Where(r => r.Length > 0))
            foreach (string dir in new[] { root, Path.Combine(root, "runtimes", rid, "native") })
                if (seen.Add(Path.GetFullPath(dir)) && Directory.Exists(dir)) yield return Path.GetFullPath(dir);
    }

    internal static string? FindNative(string fileName) =>
        ProbeDirectories().Select(d => Path.Combine(d, fileName)).FirstOrDefault(File.Exists);

    private static string? NullIfEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;

    private const int RtldNow = 0x2, RtldGlobal = 0x100;

    [LibraryImport("libc.so.6", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr DlOpen(string path, int flags);

    [LibraryImport("libc.so.6", EntryPoint = "dlerror")]
    private static partial IntPtr DlError();
}
