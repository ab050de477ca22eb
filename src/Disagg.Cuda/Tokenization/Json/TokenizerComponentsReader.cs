using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Disagg.Cuda.Loading;

namespace Disagg.Tokenization;

/// <summary>
/// Builds the normalizer, pre-tokenizer, post-processor and decoder of a tokenizer.json. Each supports the
/// component types used by the Llama, Mistral and Qwen families; any other type is a <see cref="ModelLoadException"/>
/// rather than a silently different tokenization.
/// </summary>
internal static class TokenizerComponentsReader
{
    public static TextNormalizer? ReadNormalizer(JsonSection? section)
    {
        if (section is not { } n) return null;
        string type = n.String("type");
        return type switch
        {
            "Sequence" => new TextNormalizer.Sequence(n.Objects("normalizers").Select(s => ReadNormalizer(s)!).ToArray()),
            "Prepend" => new TextNormalizer.Prepend(n.String("prepend")),
            "Replace" => new TextNormalizer.Replace(LiteralPattern(n), n.String("content")),
            "NFC" => new TextNormalizer.Unicode(NormalizationForm.FormC),
            "NFD" => new TextNormalizer.Unicode(NormalizationForm.FormD),
            "NFKC" => new TextNormalizer.Unicode(NormalizationForm.FormKC),
            "NFKD" => new TextNormalizer.Unicode(NormalizationForm.FormKD),
            _ => throw Unsupported(n, "normalizer", type),
        };
    }

    public static List<PreTokenizerStep> ReadPreTokenizer(JsonSection? section)
    {
        var steps = new List<PreTokenizerStep>();
        if (section is { } p) AddPreTokenizer(p, steps);
        return steps;
    }

    public static SpecialTokenTemplate ReadPostProcessor(JsonSection? section)
    {
        if (section is not { } p) return SpecialTokenTemplate.None;
        string type = p.String("type");
        switch (type)
        {
            case "ByteLevel":
                // Only adjusts offsets, which are not produced here.
                return SpecialTokenTemplate.None;
            case "Sequence":
                var templates = p.Objects("processors").Select(inner => ReadPostProcessor(inner)).Where(t => t != SpecialTokenTemplate.None).ToList();
                if (templates.Count > 1) throw p.Error("processors", "holds more than one processor that adds tokens, which is not supported.");
                return templates.Count == 1 ? templates[0] : SpecialTokenTemplate.None;
            case "TemplateProcessing":
                return ReadTemplate(p);
            default:
                throw Unsupported(p, "post_processor", type);
        }
    }

    public static List<DecoderStep> ReadDecoder(JsonSection? section)
    {
        var steps = new List<DecoderStep>();
        if (section is { } d) AddDecoder(d, steps);
        return steps;
    }

    private static void AddPreTokenizer(JsonSection p, List<PreTokenizerStep> steps)
    {
        string type = p.String("type");
        switch (type)
        {
            case "Sequence":
                foreach (var inner in p.Objects("pretokenizers")) AddPreTokenizer(inner, steps);
                break;
            case "Split":
                string behavior = p.String("behavior");
                if (behavior != "Isolated") throw p.Error("behavior", $"is '{behavior}'; only 'Isolated' is supported.");
                if (p.Bool("invert", false)) throw p.Error("invert", "is true, which is not supported.");
                steps.Add(new SplitPreTokenizer(CreateRegex(p)));
                break;
            case "ByteLevel":
                steps.Add(new ByteLevelPreTokenizer(p.Bool("add_prefix_space", true), p.Bool("use_regex", true)));
                break;
            case "Metaspace":
                steps.Add(new MetaspacePreTokenizer(Replacement(p), ReadPrependScheme(p), p.Bool("split", true)));
                break;
            default:
                throw Unsupported(p, "pre_tokenizer", type);
        }
    }

    private static void AddDecoder(JsonSection d, List<DecoderStep> steps)
    {
        string type = d.String("type");
        switch (type)
        {
            case "Sequence":
                foreach (var inner in d.Objects("decoders")) AddDecoder(inner, steps);
                break;
            case "ByteLevel":
                steps.Add(new ByteLevelDecoder());
                break;
            case "Replace":
                steps.Add(new ReplaceDecoder(LiteralPattern(d), d.String("content")));
                break;
            case "ByteFallback":
                steps.Add(new ByteFallbackDecoder());
                break;
            case "Fuse":
                steps.Add(new FuseDecoder());
                break;
            case "Strip":
                string content = d.String("content");
                if (content.Length != 1) throw d.Error("content", "must be a single character.");
                steps.Add(new StripDecoder(content[0], d.Int("start", 0), d.Int("stop", 0)));
                break;
            case "Metaspace":
                steps.Add(new MetaspaceDecoder(Replacement(d), ReadPrependScheme(d)));
                break;
            default:
                throw Unsupported(d, "decoder", type);
        }
    }

    private static SpecialTokenTemplate ReadTemplate(JsonSection p)
    {
        var specialIds = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (p.OptionalObject("special_tokens") is { } specials)
        {
            foreach (var entry in specials.Element.EnumerateObject())
            {
                var token = new JsonSection(p.File, entry.Value, specials.FieldPath(entry.Name));
                specialIds[entry.Name] = token.Array("ids").Select(item => item.Item.ValueKind == JsonValueKind.Number && item.Item.TryGetInt32(out int id) && id >= 0
                    ? id
                    : throw new ModelLoadException(p.File, $"'{item.Path}' must be a non-negative token id.")).ToArray();
            }
        }
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        foreach (var (item, path) in p.Array("single"))
        {
            var piece = item.ValueKind == JsonValueKind.Object ? new JsonSection(p.File, item, path) : throw new ModelLoadException(p.File, $"'{path}' must be an object.");
            if (piece.OptionalObject("Sequence") is not null)
            {
                if (seenSequence) throw piece.Error("holds a second sequence in the single-sequence template.");
                seenSequence = true;
            }
            else if (piece.OptionalObject("SpecialToken") is { } special)
            {
                string name = special.String("id");
                if (!specialIds.TryGetValue(name, out var ids)) throw special.Error("id", $"'{name}' is not listed in 'special_tokens'.");
                (seenSequence ? suffix : prefix).AddRange(ids);
            }
            else
            {
                throw piece.Error("must be a SpecialToken or a Sequence.");
            }
        }
        if (!seenSequence) throw p.Error("single", "does not place the sequence ($A).");
        return new SpecialTokenTemplate(prefix, suffix);
    }

    private static CodePointRegex CreateRegex(JsonSection p)
    {
        var pattern = p.Object("pattern");
        string text = pattern.OptionalString("Regex") ?? Regex.Escape(pattern.OptionalString("String") ?? throw pattern.Error("must hold 'Regex' or 'String'."));
        try
        {
            return new CodePointRegex(text);
        }
        catch (ArgumentException ex)
        {
            throw new ModelLoadException(p.File, $"'{pattern.Path}' is not a regex .NET can run: {ex.Message}", ex);
        }
    }

    private static string LiteralPattern(JsonSection o)
    {
        var pattern = o.Object("pattern");
        return pattern.OptionalString("String") ?? throw pattern.Error("must hold a 'String'; regex replacements are not supported.");
    }

    private static char Replacement(JsonSection o)
    {
        string replacement = o.OptionalString("replacement") ?? "\u2581";
        return replacement.Length == 1 ? replacement[0] : throw o.Error("replacement", "must be a single character.");
    }

    /// <summary><c>prepend_scheme</c>, or for older files <c>add_prefix_space</c> (true meaning "always").</summary>
    private static PrependScheme ReadPrependScheme(JsonSection o) => o.OptionalString("prepend_scheme") switch
    {
        "always" => PrependScheme.Always,
        "first" => PrependScheme.First,
        "never" => PrependScheme.Never,
        null => o.Bool("add_prefix_space", true) ? PrependScheme.Always : PrependScheme.Never,
        var other => throw o.Error("prepend_scheme", $"is '{other}'; expected always, first or never."),
    };

    private static ModelLoadException Unsupported(JsonSection o, string component, string type) =>
        o.Error("type", $"is '{type}', a {component} type that is not supported (only those of the Llama, Mistral and Qwen BPE tokenizers are).");
}
