using System.Text.Json;

namespace Disagg.Cuda.Loading;

/// <summary>
/// Typed reads of the fields of one JSON object, raising <see cref="ModelLoadException"/> that names the file and the
/// field (with its parent's prefix, e.g. <c>rope_scaling.factor</c>). JSON null counts as absent.
/// </summary>
internal readonly struct JsonFields
{
    private readonly JsonElement _object;
    private readonly string _prefix;

    public JsonFields(string path, JsonElement jsonObject, string prefix = "")
    {
        Path = path;
        _object = jsonObject;
        _prefix = prefix;
    }

    public string Path { get; }

    public bool Has(string name) => TryGet(name, out _);

    public string Name(string field) => _prefix + field;

    public int RequiredInt(string name) => OptionalInt(name) ?? throw Missing(name);

    public int? OptionalInt(string name)
    {
        if (!TryGet(name, out var value)) return null;
        if (value.ValueKind == JsonValueKind.Number)
        {
            if (value.TryGetInt32(out int result)) return result;
            // Some tools write integral values as 4096.0.
            if (value.TryGetDouble(out double d) && d == Math.Floor(d) && d >= int.MinValue && d <= int.MaxValue) return (int)d;
        }
        throw WrongType(name, "an integer", value);
    }

    public double RequiredDouble(string name) => OptionalDouble(name) ?? throw Missing(name);

    public double? OptionalDouble(string name)
    {
        if (!TryGet(name, out var value)) return null;
        if (value.ValueKind == JsonValueKind.Number && value.TryGetDouble(out double result) && double.IsFinite(result)) return result;
        throw WrongType(name, "a finite number", value);
    }

    public bool? OptionalBool(string name)
    {
        if (!TryGet(name, out var value)) return null;
        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw WrongType(name, "true or false", value),
        };
    }

    public string? OptionalString(string name)
    {
        if (!TryGet(name, out var value)) return null;
        if (value.ValueKind == JsonValueKind.String) return value.GetString();
        throw WrongType(name, "a string", value);
    }

    /// <summary>A nested object, or null when the field is absent or JSON null.</summary>
    public JsonFields? OptionalObject(string name)
    {
        if (!TryGet(name, out var value)) return null;
        if (value.ValueKind == JsonValueKind.Object) return new JsonFields(Path, value, Name(name) + ".");
        throw WrongType(name, "an object", value);
    }

    /// <summary>A token id field that may be one integer or a list of them (as eos_token_id is); empty when absent.</summary>
    public IReadOnlyList<int> TokenIds(string name)
    {
        if (!TryGet(name, out var value)) return [];
        if (value.ValueKind == JsonValueKind.Number) return [RequiredInt(name)];
        if (value.ValueKind != JsonValueKind.Array) throw WrongType(name, "an integer or a list of integers", value);
        var ids = new int[value.GetArrayLength()];
        int i = 0;
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.Number || !item.TryGetInt32(out ids[i]) || ids[i] < 0)
            {
                throw new ModelLoadException(Path, $"field '{Name(name)}' must hold non-negative integer token ids, but item {i} is {Describe(item.ValueKind)} {item.GetRawText()}.");
            }
            i++;
        }
        return ids;
    }

    /// <summary>The first string in a list field (as "architectures"), all of them, or empty when absent.</summary>
    public IReadOnlyList<string> StringList(string name)
    {
        if (!TryGet(name, out var value)) return [];
        if (value.ValueKind == JsonValueKind.String) return [value.GetString()!];
        if (value.ValueKind != JsonValueKind.Array) throw WrongType(name, "a list of strings", value);
        var items = new List<string>();
        foreach (var item in value.EnumerateArray())
        {
            if (item.ValueKind != JsonValueKind.String) throw WrongType(name, "a list of strings", value);
            items.Add(item.GetString()!);
        }
        return items;
    }

    public ModelLoadException Missing(string name) =>
        new(Path, $"missing required field '{Name(name)}'.");

    public ModelLoadException Invalid(string name, string problem) =>
        new(Path, $"field '{Name(name)}' {problem}");

    private ModelLoadException WrongType(string name, string expected, JsonElement actual)
    {
        string text = actual.GetRawText();
        if (text.Length > 60) text = text[..60] + "...";
        return new(Path, $"field '{Name(name)}' must be {expected}, but is {Describe(actual.ValueKind)} {text}.");
    }

    private bool TryGet(string name, out JsonElement value) =>
        _object.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null;

    public static string Describe(JsonValueKind kind) => kind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => kind.ToString(),
    };
}
