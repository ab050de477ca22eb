using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Disagg.Benchmarks.Serving.Results;

/// <summary>How result files are written: snake_case names, indented, enums as strings, text unescaped ("&lt;=" stays readable).</summary>
public static class ResultJson
{
    /// <summary>The serializer options of every result file.</summary>
    public static JsonSerializerOptions Options { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null, // dictionary keys are written as given
        WriteIndented = true,
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, // files for people and scripts, never embedded in HTML
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
    };

    /// <summary>Serialises <paramref name="value"/> as a result file's JSON.</summary>
    public static string Serialize(object value) => JsonSerializer.Serialize(value, Options);
}
