using System.Collections.Immutable;
using System.Text.Json;

namespace Disagg.Cuda.Loading;

/// <summary>The parsed and validated JSON header of a safetensors file.</summary>
internal sealed class SafetensorsHeader
{
    /// <summary>Header lengths above this are rejected before anything is read (the reference implementation's limit).</summary>
    public const long MaxHeaderBytes = 100_000_000;

    private const string MetadataKey = "__metadata__";

    private SafetensorsHeader(List<SafetensorsTensorInfo> tensorsInFileOrder, Dictionary<string, SafetensorsTensorInfo> byName, Dictionary<string, string> metadata)
    {
        TensorsInFileOrder = tensorsInFileOrder;
        ByName = byName;
        Metadata = metadata;
    }

    public IReadOnlyList<SafetensorsTensorInfo> TensorsInFileOrder { get; }

    public IReadOnlyDictionary<string, SafetensorsTensorInfo> ByName { get; }

    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>
    /// Parses <paramref name="json"/> and checks every entry against a data section of <paramref name="dataLength"/> bytes:
    /// known dtype, non-negative dims, offsets that match dtype size times element count, tensors that tile the data
    /// section exactly (no overlap, no gap, nothing past its end).
    /// </summary>
    public static SafetensorsHeader Parse(ReadOnlySpan<byte> json, long dataLength, string path)
    {
        var tensors = new List<SafetensorsTensorInfo>();
        var byName = new Dictionary<string, SafetensorsTensorInfo>(StringComparer.Ordinal);
        Dictionary<string, string>? metadata = null;
        try
        {
            // Depth: root object > tensor entry > shape array. Anything deeper is malformed.
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 4, CommentHandling = JsonCommentHandling.Disallow });
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                throw Error(path, "the header is not a JSON object.");
            }
            while (true)
            {
                Read(ref reader, path);
                if (reader.TokenType == JsonTokenType.EndObject) break;
                string name = reader.GetString()!;
                if (name == MetadataKey)
                {
                    if (metadata is not null) throw Error(path, "the header has more than one \"__metadata__\" entry.");
                    metadata = ParseMetadata(ref reader, path);
                    continue;
                }
                if (byName.ContainsKey(name)) throw Error(path, $"tensor '{name}' appears more than once in the header.");
                var info = ParseTensor(ref reader, name, dataLength, path);
                byName.Add(name, info);
                tensors.Add(info);
            }
            if (reader.Read()) throw Error(path, "the header has content after its closing brace.");
        }
        catch (JsonException ex)
        {
            throw new ModelLoadException(path, $"the safetensors header is not valid JSON: {ex.Message}", ex);
        }
        catch (InvalidOperationException ex)
        {
            // Utf8JsonReader.GetString raises this for strings that are not valid UTF-8.
            throw new ModelLoadException(path, $"the safetensors header is not valid JSON: {ex.Message}", ex);
        }

        CheckTiling(tensors, dataLength, path);
        return new SafetensorsHeader(tensors, byName, metadata ?? new Dictionary<string, string>(0));
    }

    private static Dictionary<string, string> ParseMetadata(ref Utf8JsonReader reader, string path)
    {
        Read(ref reader, path);
        if (reader.TokenType != JsonTokenType.StartObject) throw Error(path, "\"__metadata__\" must be an object of strings.");
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        while (true)
        {
            Read(ref reader, path);
            if (reader.TokenType == JsonTokenType.EndObject) return metadata;
            string key = reader.GetString()!;
            Read(ref reader, path);
            if (reader.TokenType != JsonTokenType.String) throw Error(path, $"\"__metadata__\" entry '{key}' must be a string, but is {Describe(reader.TokenType)}.");
            if (!metadata.TryAdd(key, reader.GetString()!)) throw Error(path, $"\"__metadata__\" entry '{key}' appears more than once.");
        }
    }

    private static SafetensorsTensorInfo ParseTensor(ref Utf8JsonReader reader, string name, long dataLength, string path)
    {
        Read(ref reader, path);
        if (reader.TokenType != JsonTokenType.StartObject) throw Error(path, $"tensor '{name}': entry must be an object, but is {Describe(reader.TokenType)}.");

        TensorDataType? dataType = null;
        List<long>? shape = null;
        long begin = -1, end = -1;
        bool hasOffsets = false;
        while (true)
        {
            Read(ref reader, path);
            if (reader.TokenType == JsonTokenType.EndObject) break;
            if (reader.ValueTextEquals("dtype"u8))
            {
                if (dataType is not null) throw Error(path, $"tensor '{name}': \"dtype\" appears more than once.");
                Read(ref reader, path);
                if (reader.TokenType != JsonTokenType.String) throw Error(path, $"tensor '{name}': \"dtype\" must be a string, but is {Describe(reader.TokenType)}.");
                string dtype = reader.GetString()!;
                if (!TensorDataTypeExtensions.TryParseSafetensorsName(dtype, out var parsed))
                {
                    throw Error(path, $"tensor '{name}' has unknown dtype '{dtype}' (supported: {TensorDataTypeExtensions.SupportedSafetensorsNames}).");
                }
                dataType = parsed;
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                if (shape is not null) throw Error(path, $"tensor '{name}': \"shape\" appears more than once.");
                shape = new List<long>(4);
                ReadIntegerArray(ref reader, shape, name, "shape", path);
                foreach (long dim in shape)
                {
                    if (dim < 0) throw Error(path, $"tensor '{name}' has a negative dimension in shape {SafetensorsTensorInfo.FormatShape(shape.ToArray())}.");
                }
            }
            else if (reader.ValueTextEquals("data_offsets"u8))
            {
                if (hasOffsets) throw Error(path, $"tensor '{name}': \"data_offsets\" appears more than once.");
                var offsets = new List<long>(2);
                ReadIntegerArray(ref reader, offsets, name, "data_offsets", path);
                if (offsets.Count != 2) throw Error(path, $"tensor '{name}': \"data_offsets\" must hold exactly two numbers [begin, end], but holds {offsets.Count}.");
                (begin, end) = (offsets[0], offsets[1]);
                hasOffsets = true;
            }
            else
            {
                // Unknown keys are tolerated, as the reference reader does.
                Read(ref reader, path);
                reader.Skip();
            }
        }

        if (dataType is null) throw Error(path, $"tensor '{name}' has no \"dtype\".");
        if (shape is null) throw Error(path, $"tensor '{name}' has no \"shape\".");
        if (!hasOffsets) throw Error(path, $"tensor '{name}' has no \"data_offsets\".");

        var shapeArray = shape.ToImmutableArray();
        long elementCount = 1;
        long byteLength;
        try
        {
            foreach (long dim in shape) elementCount = checked(elementCount * dim);
            byteLength = checked(elementCount * dataType.Value.SizeInBytes());
        }
        catch (OverflowException)
        {
            throw Error(path, $"tensor '{name}' shape {SafetensorsTensorInfo.FormatShape(shape.ToArray())} is too large to address.");
        }
        if (begin < 0 || end < 0) throw Error(path, $"tensor '{name}' has negative data_offsets [{begin}, {end}].");
        if (end < begin) throw Error(path, $"tensor '{name}' has data_offsets [{begin}, {end}] that end before they begin.");
        if (end > dataLength)
        {
            throw Error(path, $"tensor '{name}' has data_offsets [{begin}, {end}] out of range: the data section holds only {dataLength} bytes (file truncated?).");
        }
        if (end - begin != byteLength)
        {
            throw Error(path, $"tensor '{name}' has data_offsets [{begin}, {end}] spanning {end - begin} bytes, but {dataType.Value.ToSafetensorsName()} {SafetensorsTensorInfo.FormatShape(shape.ToArray())} needs {byteLength} bytes.");
        }
        return new SafetensorsTensorInfo(name, dataType.Value, shapeArray, elementCount, begin, byteLength);
    }

    private static void ReadIntegerArray(ref Utf8JsonReader reader, List<long> values, string name, string field, string path)
    {
        Read(ref reader, path);
        if (reader.TokenType != JsonTokenType.StartArray) throw Error(path, $"tensor '{name}': \"{field}\" must be an array of integers, but is {Describe(reader.TokenType)}.");
        while (true)
        {
            Read(ref reader, path);
            if (reader.TokenType == JsonTokenType.EndArray) return;
            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out long value))
            {
                throw Error(path, $"tensor '{name}': \"{field}\" must hold 64-bit integers, but holds {Describe(reader.TokenType)}.");
            }
            values.Add(value);
        }
    }

    /// <summary>
    /// The format requires the tensors to cover the data section exactly: sorted by offset, each begins where the previous
    /// ended, and the last ends at the end of the file. This rules out overlapping tensors and hidden bytes.
    /// </summary>
    private static void CheckTiling(List<SafetensorsTensorInfo> tensors, long dataLength, string path)
    {
        var sorted = tensors.ToArray();
        Array.Sort(sorted, static (a, b) =>
        {
            int byBegin = a.DataOffset.CompareTo(b.DataOffset);
            return byBegin != 0 ? byBegin : a.ByteLength.CompareTo(b.ByteLength);
        });
        long expected = 0;
        SafetensorsTensorInfo? previous = null;
        foreach (var tensor in sorted)
        {
            if (tensor.DataOffset < expected)
            {
                throw Error(path, $"tensor '{tensor.Name}' (bytes {tensor.DataOffset}..{tensor.DataOffset + tensor.ByteLength}) overlaps tensor '{previous!.Name}' (bytes {previous.DataOffset}..{expected}).");
            }
            if (tensor.DataOffset > expected)
            {
                throw Error(path, $"bytes {expected}..{tensor.DataOffset} of the data section belong to no tensor (gap before tensor '{tensor.Name}').");
            }
            expected = tensor.DataOffset + tensor.ByteLength;
            previous = tensor;
        }
        if (expected != dataLength)
        {
            throw Error(path, $"the data section holds {dataLength} bytes but the tensors cover only {expected}; {dataLength - expected} trailing bytes belong to no tensor.");
        }
    }

    private static void Read(ref Utf8JsonReader reader, string path)
    {
        if (!reader.Read()) throw Error(path, "the safetensors header JSON ends early.");
    }

    private static string Describe(JsonTokenType token) => token switch
    {
        JsonTokenType.StartObject => "an object",
        JsonTokenType.StartArray => "an array",
        JsonTokenType.String => "a string",
        JsonTokenType.Number => "a number that is not a 64-bit integer",
        JsonTokenType.True or JsonTokenType.False => "a boolean",
        JsonTokenType.Null => "null",
        _ => token.ToString(),
    };

    private static ModelLoadException Error(string path, string problem) => new(path, problem);
}
