using System.Text.Json;
using Disagg.Cuda.Loading;

namespace Disagg.Tokenization;

/// <summary>
/// Typed reads of one JSON object of a tokenizer file. Errors are <see cref="ModelLoadException"/>s naming the file
/// and the dotted path of the field (e.g. <c>pre_tokenizer.pretokenizers[0].pattern</c>). JSON null counts as absent.
/// </summary>
internal readonly struct JsonSection
{
    public JsonSection(string file, JsonElement element, string path)
    {
        File = file;
        Element = element;
        Path = path;
    }

    public string File { get; }

    public JsonElement Element { get; }

    /// <summary>Dotted path of this object inside the file; empty for the root.</summary>
    public string Path { get; }

    public string FieldPath(string name) => Path.Length == 0 ? name : $"{Path}.{name}";

    public bool TryGet(string name, out JsonElement value) =>
        Element.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public string String(string name) => OptionalString(name) ?? throw Error(name, "is missing.");

    public string? OptionalString(string name)
    {
        if (!TryGet(name, out var value)) return null;
        return value.ValueKind == JsonValueKind.String ? value.GetString()! : throw WrongType(name, "a string", value);
    }

    public bool Bool(string name, bool fallback)
    {
        if (!TryGet(name, out var value)) return fallback;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(name, "true or false", value),
        };
    }

    public int Int(string name, int fallback)
    {
        if (!TryGet(name, out var value)) return fallback;
        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out int result) && result >= 0
            ? result
            : throw WrongType(name, "a non-negative integer", value);
    }

    public JsonSection? OptionalObject(string name)
    {
        if (!TryGet(name, out var value)) return null;
        return value.ValueKind == JsonValueKind.Object ? new JsonSection(File, value, FieldPath(name)) : throw WrongType(name, "an object", value);
    }

    public JsonSection Object(string name) => OptionalObject(name) ?? throw Error(name, "is missing.");

    /// <summary>The items of an array field, each with its path; empty when absent.</summary>
    public IEnumerable<(JsonElement Item, string Path)> Array(string name)
    {
        if (!TryGet(name, out var value)) return [];
        if (value.ValueKind != JsonValueKind.Array) throw WrongType(name, "an array", value);
        string path = FieldPath(name);
        return value.EnumerateArray().Select((item, i) => (item, $"{path}[{i}]"));
    }

    /// <summary>The objects of an array field; empty when absent.</summary>
    public IEnumerable<JsonSection> Objects(string name)
    {
        string file = File;
        return Array(name).Select(entry => entry.Item.ValueKind == JsonValueKind.Object
            ? new JsonSection(file, entry.Item, entry.Path)
            : throw new ModelLoadException(file, $"'{entry.Path}' must be an object."));
    }

    public ModelLoadException Error(string name, string problem) => new(File, $"'{FieldPath(name)}' {problem}");

    /// <summary>An error about this object as a whole.</summary>
    public ModelLoadException Error(string problem) => new(File, $"'{(Path.Length == 0 ? "(root)" : Path)}' {problem}");

    private ModelLoadException WrongType(string name, string expected, JsonElement actual)
    {
        string text = actual.GetRawText();
        if (text.Length > 60) text = text[..60] + "...";
        return Error(name, $"must be {expected}, but is {text}.");
    }
}
