using System.Globalization;

namespace Disagg.Soak;

/// <summary>The command line: <c>--model DIR [--device cpu|cuda:N] [--decode-device D] [--requests N] ...</c>.</summary>
internal sealed record SoakArguments
{
    public required string Model { get; init; }
    public string Device { get; init; } = "cpu";
    public string? DecodeDevice { get; init; }
    public int Requests { get; init; } = 2000;
    public int Concurrency { get; init; } = 32;
    public int Seed { get; init; } = 1;
    public string? DataType { get; init; }
    public int KvBlocks { get; init; } = 2048;
    public int BlockSize { get; init; } = 16;
    public int MaxPromptTokens { get; init; } = 512;
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>Check every Nth request's tokens against a colocated engine on the prefill device (0: no check).</summary>
    public int VerifyEvery { get; init; }

    public const string Usage =
        "usage: Disagg.Soak --model DIR [--device cpu|cuda:N] [--decode-device cpu|cuda:N] [--requests N] [--concurrency N] [--seed N]\n" +
        "                   [--dtype float32|bfloat16|float16] [--kv-blocks N] [--block-size N] [--max-prompt N] [--max-new N] [--verify-every N]";

    public static SoakArguments Parse(string[] args)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
                throw new ArgumentException($"Expected '--name value' pairs, got '{args[i]}'.");
            values[args[i][2..]] = args[i + 1];
        }
        int Int(string name, int fallback) => values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;
        var parsed = new SoakArguments
        {
            Model = values.GetValueOrDefault("model") ?? throw new ArgumentException("--model is required."),
            Device = values.GetValueOrDefault("device") ?? "cpu",
            DecodeDevice = values.GetValueOrDefault("decode-device"),
            Requests = Int("requests", 2000),
            Concurrency = Int("concurrency", 32),
            Seed = Int("seed", 1),
            DataType = values.GetValueOrDefault("dtype"),
            KvBlocks = Int("kv-blocks", 2048),
            BlockSize = Int("block-size", 16),
            MaxPromptTokens = Int("max-prompt", 512),
            MaxNewTokens = Int("max-new", 64),
            VerifyEvery = Int("verify-every", 0),
        };
        var known = new HashSet<string>(["model", "device", "decode-device", "requests", "concurrency", "seed", "dtype", "kv-blocks", "block-size", "max-prompt", "max-new", "verify-every"]);
        if (values.Keys.FirstOrDefault(k => !known.Contains(k)) is { } unknown) throw new ArgumentException($"Unknown option --{unknown}.");
        if (parsed.Requests < 2 || parsed.Concurrency < 1 || parsed.MaxPromptTokens < 2 || parsed.MaxNewTokens < 1 || parsed.VerifyEvery < 0)
            throw new ArgumentException("--requests must be at least 2; --concurrency, --max-prompt and --max-new positive; --verify-every 0 or more.");
        return parsed;
    }
}
