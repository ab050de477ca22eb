using System.Globalization;
using Disagg.Cuda.Loading;

namespace Disagg.Chat;

/// <summary>Command-line options. <see cref="Parse"/> throws <see cref="UsageException"/> with a message fit for the user.</summary>
internal sealed class ChatOptions
{
    public const string Usage = """
        Disagg.Chat: chat with a Hugging Face Llama / Qwen / Mistral model directory.

          --model DIR          model directory (config.json, *.safetensors, tokenizer.json)
                               (default: the bundled demo model, a small Llama trained on the King James Bible)
          --prompt TEXT        one-shot: answer TEXT (through the model's chat template) and exit
          --prompt-ids 1,2,3   one-shot: continue these token ids as they are (no template) and exit
          --raw                with --prompt: no chat template, continue the text as it is
          --system TEXT        system message for the chat template
          --max-tokens N       most tokens to generate (default 256)
          Sampling flags left out take the model's generation_config.json values, else the defaults below.
          --temperature T      0 for greedy (default 0.7)
          --top-p P            nucleus sampling mass (default 1)
          --top-k K            keep the K most likely tokens (default 0: all)
          --min-p P            drop tokens less likely than P times the most likely one (default 0: none)
          --repetition-penalty R  penalize tokens already in the prompt or reply (default 1: none; 1.1 is mild)
          --presence-penalty X    subtract X from tokens the reply already holds (-2 to 2, default 0)
          --frequency-penalty X   subtract X per time the reply already holds a token (-2 to 2, default 0)
          --seed N             seed for reproducible sampling
          --print-ids          one-shot: print the generated token ids (comma-separated) instead of text
          --device D           cpu (default), cuda or cuda:N
          --mode M             colocated (default) or disaggregated (prefill and decode on two engines)
          --prefill-device D   disaggregated: the prefill engine's device (default: --device)
          --decode-device D    disaggregated: the decode engine's device (default: --device)
          --transport T        disaggregated: inproc (default), unix or tcp (decode runs in a second process, started
                               by this one unless --attach; the KV crosses a socket)
          --endpoint E         unix:/path or tcp:host:port (default: a fresh Unix socket, or 127.0.0.1 on a free port)
          --attach             with unix/tcp: connect to a decode worker already listening at --endpoint
          --serve-decode       run as a decode worker: listen at --endpoint and serve until stdin closes
                               (the shared secret comes from DISAGG_SHARED_SECRET, at least 16 characters)
          --dtype T            float32, bfloat16 or float16 (default: bfloat16 on CUDA, float32 on CPU)

        TLS on the tcp transport (TLS 1.3; on both sides: the chat and the decode worker):
          --tls                encrypt the connection to the decode worker. Started by the chat with no --tls-cert, the worker
                               gets a throwaway self-signed certificate made in memory, which the chat pins
          --tls-cert PATH      the worker's certificate with its private key: PKCS#12 (.pfx, .p12) or PEM (--serve-decode needs
                               it; without --attach the chat hands it to the worker it starts, and pins it)
          --tls-key PATH       PEM private key of --tls-cert, when it is not in the same file
          --tls-password P     password of the PKCS#12 files or encrypted PEM keys given here (or set DISAGG_TLS_PASSWORD,
                               which keeps it off the command line)
          --tls-pin SHA256     trust the worker certificate with this SHA-256 thumbprint, with no chain needed (repeatable;
                               the worker prints its own). Without a pin, the system's trusted roots decide
          --tls-host NAME      the name the worker's certificate must be issued for (default: the --endpoint address)
          --tls-ca PATH        trust worker certificates issued by these CAs (PEM bundle or DER) instead of the system's roots
          --tls-client-cert PATH  the chat's own certificate with its key (PKCS#12, or PEM with --tls-client-key), for a worker
                               that requires one; a worker the chat starts then accepts only this certificate
          --tls-client-key PATH   PEM private key of --tls-client-cert, when it is not in the same file
          --tls-client-ca PATH --serve-decode: accept only chats presenting a certificate issued by these CAs
          --tls-client-pin SHA256  --serve-decode: accept only chats presenting the certificate with this thumbprint (repeatable)

        Without --prompt / --prompt-ids it is an interactive chat: /reset clears the conversation, /exit (or Ctrl+D) quits,
        Ctrl+C stops the answer being written. The completion goes to stdout, timings to stderr.
        """;

    /// <summary>Where the build puts the bundled demo model (samples/models/disagg-demo), beside the program.</summary>
    public static string DemoModel => Path.Combine(AppContext.BaseDirectory, "models", "disagg-demo");

    public string Model { get; private set; } = DemoModel;
    public string? Prompt { get; private set; }
    public int[]? PromptIds { get; private set; }
    public bool Raw { get; private set; }
    public string? System { get; private set; }
    public int MaxTokens { get; private set; } = 256;
    // Null: not given, so the model's generation_config.json decides, else the defaults of Sampling().
    public float? Temperature { get; private set; }
    public float? TopP { get; private set; }
    public int? TopK { get; private set; }
    public float? MinP { get; private set; }
    public float? RepetitionPenalty { get; private set; }
    public float? PresencePenalty { get; private set; }
    public float? FrequencyPenalty { get; private set; }
    public ulong? Seed { get; private set; }
    public bool PrintIds { get; private set; }
    public string Device { get; private set; } = "cpu";
    public string? DataType { get; private set; }
    public bool Help { get; private set; }
    public bool Disaggregated { get; private set; }
    public string? PrefillDevice { get; private set; }
    public string? DecodeDevice { get; private set; }
    public string Transport { get; private set; } = "inproc";
    public string? Endpoint { get; private set; }
    public bool Attach { get; private set; }
    public bool ServeDecode { get; private set; }
    public TlsFlags Tls { get; } = new();

    public bool OneShot => Prompt is not null || PromptIds is not null;

    public static ChatOptions Parse(string[] args)
    {
        var o = new ChatOptions();
        for (int i = 0; i < args.Length; i++)
        {
            string flag = args[i];
            string Value() => i + 1 < args.Length ? args[++i] : throw new UsageException($"{flag} needs a value.");
            switch (flag)
            {
                case "--model": o.Model = Value(); break;
                case "--prompt": o.Prompt = Value(); break;
                case "--prompt-ids": o.PromptIds = ParseIds(Value()); break;
                case "--raw": o.Raw = true; break;
                case "--system": o.System = Value(); break;
                case "--max-tokens": o.MaxTokens = Int(flag, Value(), min: 1); break;
                case "--temperature": o.Temperature = Float(flag, Value()); break;
                case "--top-p": o.TopP = Float(flag, Value()); break;
                case "--top-k": o.TopK = Int(flag, Value(), min: 0); break;
                case "--min-p": o.MinP = Float(flag, Value()); break;
                case "--repetition-penalty": o.RepetitionPenalty = Float(flag, Value()); break;
                case "--presence-penalty": o.PresencePenalty = Float(flag, Value()); break;
                case "--frequency-penalty": o.FrequencyPenalty = Float(flag, Value()); break;
                case "--seed": o.Seed = ulong.TryParse(Value(), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : throw new UsageException("--seed must be a non-negative integer."); break;
                case "--print-ids": o.PrintIds = true; break;
                case "--device": o.Device = Value(); break;
                case "--dtype": o.DataType = Value(); break;
                case "--mode":
                    o.Disaggregated = Value() switch
                    {
                        "colocated" => false,
                        "disaggregated" => true,
                        var m => throw new UsageException($"--mode must be colocated or disaggregated, not '{m}'."),
                    };
                    break;
                case "--prefill-device": o.PrefillDevice = Value(); break;
                case "--decode-device": o.DecodeDevice = Value(); break;
                case "--transport": o.Transport = Value(); break;
                case "--endpoint": o.Endpoint = Value(); break;
                case "--attach": o.Attach = true; break;
                case "--serve-decode": o.ServeDecode = true; break;
                case "--tls": o.Tls.Enabled = true; break;
                case "--tls-cert": o.Tls.CertificatePath = Value(); break;
                case "--tls-key": o.Tls.KeyPath = Value(); break;
                case "--tls-password": o.Tls.Password = Value(); break;
                case "--tls-pin": o.Tls.Pins.Add(TlsFlags.Thumbprint(Value(), flag)); break;
                case "--tls-host": o.Tls.TargetHost = TlsFlags.HostName(Value()); break;
                case "--tls-ca": o.Tls.AuthorityPath = Value(); break;
                case "--tls-client-cert": o.Tls.ClientCertificatePath = Value(); break;
                case "--tls-client-key": o.Tls.ClientKeyPath = Value(); break;
                case "--tls-client-ca": o.Tls.ClientAuthorityPath = Value(); break;
                case "--tls-client-pin": o.Tls.ClientPins.Add(TlsFlags.Thumbprint(Value(), flag)); break;
                case "-h" or "--help": o.Help = true; break;
                default: throw new UsageException($"Unknown option '{flag}'.");
            }
        }
        if (o.Help) return o;
        if (o.Model.Length == 0) throw new UsageException("--model needs a directory.");
        if (o.Prompt is not null && o.PromptIds is not null) throw new UsageException("Give --prompt or --prompt-ids, not both.");
        if (o.PrintIds && !o.OneShot) throw new UsageException("--print-ids needs --prompt or --prompt-ids.");
        if (o.Transport is not ("inproc" or "unix" or "tcp")) throw new UsageException($"--transport must be inproc, unix or tcp, not '{o.Transport}'.");
        if (o.Transport != "inproc" && !o.Disaggregated) throw new UsageException("--transport unix/tcp needs --mode disaggregated.");
        if ((o.Attach || o.ServeDecode) && o.Endpoint is null) throw new UsageException("--attach and --serve-decode need --endpoint.");
        if (o.Endpoint is not null) _ = Endpoints.Parse(o.Endpoint);
        if (!o.Disaggregated && (o.PrefillDevice ?? o.DecodeDevice) is not null)
            throw new UsageException("--prefill-device and --decode-device need --mode disaggregated.");
        o.Tls.Validate(o);
        try { o.Sampling([]).Validate(); }
        catch (ArgumentException e) { throw new UsageException(e.Message.Split(" (Parameter")[0]); } // "TopP must be in (0, 1]."
        return o;
    }

    /// <summary>The flags given, over the model's generation_config.json (when there is one), over temperature 0.7 and
    /// the <see cref="SamplingParameters"/> defaults.</summary>
    public SamplingParameters Sampling(IReadOnlyList<int> stopTokens, GenerationConfig? model = null)
    {
        var sampling = new SamplingParameters { Temperature = 0.7f, Seed = Seed, MaxTokens = MaxTokens, StopTokenIds = stopTokens };
        if (model is not null) sampling = model.ApplyTo(sampling);
        return sampling with
        {
            Temperature = Temperature ?? sampling.Temperature,
            TopP = TopP ?? sampling.TopP,
            TopK = TopK ?? sampling.TopK,
            MinP = MinP ?? sampling.MinP,
            RepetitionPenalty = RepetitionPenalty ?? sampling.RepetitionPenalty,
            PresencePenalty = PresencePenalty ?? sampling.PresencePenalty,
            FrequencyPenalty = FrequencyPenalty ?? sampling.FrequencyPenalty,
        };
    }

    private static int[] ParseIds(string text)
    {
        var parts = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0) throw new UsageException("--prompt-ids needs at least one token id.");
        return [.. parts.Select(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out int id)
            ? id : throw new UsageException($"--prompt-ids: '{p}' is not a token id."))];
    }

    private static int Int(string flag, string text, int min) =>
        int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int v) && v >= min
            ? v : throw new UsageException($"{flag} must be an integer of at least {min}.");

    private static float Float(string flag, string text) =>
        float.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out float v) && float.IsFinite(v)
            ? v : throw new UsageException($"{flag} must be a number.");
}

/// <summary>Bad command line: printed with the usage text, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
