using System.Text.Json;
using System.Text.Unicode;
using Disagg.Cuda.Loading;

namespace Disagg.Tokenization;

/// <summary>
/// Reads a tokenizer JSON file from a path or a stream into a <see cref="JsonDocument"/> whose root is an object,
/// turning every failure into a <see cref="ModelLoadException"/> that names the file.
/// </summary>
internal static class JsonSource
{
    /// <summary>tokenizer.json of large vocabularies is ~10 MB; anything past this is not a tokenizer file.</summary>
    public const long MaxBytes = 256L * 1024 * 1024;

    public static JsonDocument ReadFile(string path)
    {
        byte[] bytes;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
            if (stream.Length > MaxBytes) throw TooLarge(path, stream.Length);
            bytes = new byte[stream.Length];
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
        return Parse(bytes, path);
    }

    public static JsonDocument ReadStream(Stream stream, string name)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var buffer = new MemoryStream();
        try
        {
            var chunk = new byte[81920];
            int read;
            while ((read = stream.Read(chunk)) > 0)
            {
                buffer.Write(chunk, 0, read);
                if (buffer.Length > MaxBytes) throw TooLarge(name, buffer.Length);
            }
        }
        catch (Exception ex) when (ex is IOException or NotSupportedException or ObjectDisposedException)
        {
            throw new ModelLoadException(name, $"the stream cannot be read: {ex.Message}", ex);
        }
        return Parse(buffer.ToArray(), name);
    }

    private static ModelLoadException TooLarge(string name, long length) =>
        new(name, $"the file has {length} bytes, more than the {MaxBytes}-byte limit for a tokenizer file.");

    private static JsonDocument Parse(byte[] bytes, string name)
    {
        // Editors on Windows may save a byte order mark, which the JSON parser rejects.
        ReadOnlyMemory<byte> json = bytes.AsSpan().StartsWith("\uFEFF"u8) ? bytes.AsMemory(3) : bytes;
        if (!Utf8.IsValid(json.Span)) throw new ModelLoadException(name, "the file is not valid UTF-8 text.");
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new ModelLoadException(name, $"the file is not valid JSON: {ex.Message}", ex);
        }
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            document.Dispose();
            throw new ModelLoadException(name, "the file must hold a JSON object.");
        }
        return document;
    }
}
