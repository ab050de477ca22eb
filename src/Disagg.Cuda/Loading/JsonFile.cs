using System.Text.Json;
using System.Text.Unicode;

namespace Disagg.Cuda.Loading;

/// <summary>Reads the small JSON files of a model directory with a size cap and uniform errors.</summary>
internal static class JsonFile
{
    /// <summary>Config and index files are kilobytes; anything this large is not one.</summary>
    public const long MaxBytes = 64L * 1024 * 1024;

    /// <summary>Parses <paramref name="path"/>, whose root must be a JSON object.</summary>
    /// <exception cref="ModelLoadException">Missing, oversized, unreadable or not a JSON object.</exception>
    public static JsonDocument ReadObject(string path)
    {
        byte[] bytes;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            long length = stream.Length;
            if (length > MaxBytes)
            {
                throw new ModelLoadException(path, $"the file has {length} bytes, more than the {MaxBytes}-byte limit for a JSON configuration file.");
            }
            bytes = new byte[length];
            stream.ReadExactly(bytes);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelLoadException(path, "the file does not exist.", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(path, $"the file cannot be read: {ex.Message}", ex);
        }

        // Editors on Windows may save a byte order mark, which the JSON parser rejects.
        ReadOnlyMemory<byte> json = bytes.AsSpan().StartsWith("\uFEFF"u8) ? bytes.AsMemory(3) : bytes;
        // Checked up front so that reading string values later cannot fail on bad encoding.
        if (!Utf8.IsValid(json.Span)) throw new ModelLoadException(path, "the file is not valid UTF-8 text.");

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64, CommentHandling = JsonCommentHandling.Disallow, AllowDuplicateProperties = false });
        }
        catch (JsonException ex)
        {
            throw new ModelLoadException(path, $"the file is not valid JSON: {ex.Message}", ex);
        }
        var kind = document.RootElement.ValueKind;
        if (kind != JsonValueKind.Object)
        {
            document.Dispose();
            throw new ModelLoadException(path, $"the file must hold a JSON object, but holds {JsonFields.Describe(kind)}.");
        }
        return document;
    }
}
