using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;

namespace Disagg.Cuda.Loading;

/// <summary>Name, element type and shape of a tensor to be written by <see cref="SafetensorsWriter"/>.</summary>
/// <param name="Name">The tensor's name; unique within the file, and not <c>__metadata__</c>.</param>
/// <param name="DataType">Element type.</param>
/// <param name="Shape">Dimensions, outermost first; each non-negative.</param>
public sealed record SafetensorsTensorDescriptor(string Name, TensorDataType DataType, IReadOnlyList<long> Shape)
{
    /// <summary>Bytes of data the tensor needs.</summary>
    public long ByteLength
    {
        get
        {
            long count = 1;
            foreach (long dim in Shape) count = checked(count * dim);
            return checked(count * DataType.SizeInBytes());
        }
    }
}

/// <summary>
/// Writes a <c>.safetensors</c> file by streaming: the tensors are declared up front (so the header can be written
/// first), then their bytes are written in declaration order, in as many pieces as suit the caller. The file appears at
/// its path only when <see cref="Complete"/> succeeds; until then it is written under a temporary name, which
/// <see cref="Dispose"/> deletes if the write was abandoned.
/// </summary>
public sealed class SafetensorsWriter : IDisposable
{
    private readonly string _path;
    private readonly string _partialPath;
    private readonly SafetensorsTensorDescriptor[] _tensors;
    private readonly long[] _ends;
    private FileStream? _stream;
    private long _written;
    private bool _completed;

    /// <summary>Creates the file's temporary copy and writes its header.</summary>
    /// <param name="path">Where the finished file goes (replaced if it exists).</param>
    /// <param name="tensors">The tensors, in the order their bytes will be written.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string pairs.</param>
    public SafetensorsWriter(string path, IReadOnlyList<SafetensorsTensorDescriptor> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(tensors);
        _path = Path.GetFullPath(path);
        _partialPath = _path + ".partial";
        _tensors = [.. tensors];
        _ends = new long[_tensors.Length];

        var names = new HashSet<string>(StringComparer.Ordinal);
        long offset = 0;
        for (int i = 0; i < _tensors.Length; i++)
        {
            var tensor = _tensors[i] ?? throw new ArgumentException($"Tensor {i} is null.", nameof(tensors));
            if (string.IsNullOrEmpty(tensor.Name) || tensor.Name == "__metadata__")
            {
                throw new ArgumentException($"Tensor {i} has an invalid name '{tensor.Name}'.", nameof(tensors));
            }
            if (!names.Add(tensor.Name)) throw new ArgumentException($"Tensor '{tensor.Name}' is declared twice.", nameof(tensors));
            foreach (long dim in tensor.Shape)
            {
                if (dim < 0) throw new ArgumentException($"Tensor '{tensor.Name}' has a negative dimension.", nameof(tensors));
            }
            _ = tensor.DataType.SizeInBytes(); // rejects undefined enum values
            offset = checked(offset + tensor.ByteLength);
            _ends[i] = offset;
        }

        byte[] header = BuildHeader(_tensors, _ends, metadata);
        _stream = new FileStream(_partialPath, FileMode.Create, FileAccess.Write, FileShare.None);
        try
        {
            Span<byte> prefix = stackalloc byte[sizeof(ulong)];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)header.Length);
            _stream.Write(prefix);
            _stream.Write(header);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Total bytes of tensor data the file will hold.</summary>
    public long DataLength => _ends.Length == 0 ? 0 : _ends[^1];

    /// <summary>Bytes of tensor data written so far.</summary>
    public long BytesWritten => _written;

    /// <summary>Appends the next <paramref name="bytes"/> of tensor data (they may cross tensor boundaries).</summary>
    /// <exception cref="InvalidOperationException">More bytes than the declared tensors need, or the writer is completed.</exception>
    public void Write(ReadOnlySpan<byte> bytes)
    {
        var stream = _stream ?? throw new InvalidOperationException("The writer is completed or disposed.");
        if (bytes.Length > DataLength - _written)
        {
            throw new InvalidOperationException($"Writing {bytes.Length} bytes would exceed the {DataLength} bytes the declared tensors hold ({_written} written).");
        }
        stream.Write(bytes);
        _written += bytes.Length;
    }

    /// <summary>Checks that every declared byte was written, flushes the file to disk and moves it to its final path.</summary>
    public void Complete()
    {
        var stream = _stream ?? throw new InvalidOperationException("The writer is completed or disposed.");
        if (_written != DataLength)
        {
            int next = Array.FindIndex(_ends, end => end > _written);
            throw new InvalidOperationException($"Only {_written} of {DataLength} data bytes were written (tensor '{_tensors[next].Name}' is incomplete).");
        }
        stream.Flush(flushToDisk: true);
        stream.Dispose();
        _stream = null;
        File.Move(_partialPath, _path, overwrite: true);
        _completed = true;
    }

    /// <summary>Writes a whole file from tensors already in memory.</summary>
    public static void WriteFile(string path, IReadOnlyList<(SafetensorsTensorDescriptor Tensor, ReadOnlyMemory<byte> Data)> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var descriptors = new SafetensorsTensorDescriptor[tensors.Count];
        for (int i = 0; i < descriptors.Length; i++)
        {
            var (tensor, data) = tensors[i];
            if (tensor is not null && data.Length != tensor.ByteLength)
            {
                throw new ArgumentException($"Tensor '{tensor.Name}' needs {tensor.ByteLength} bytes but {data.Length} were given.", nameof(tensors));
            }
            descriptors[i] = tensor!;
        }
        using var writer = new SafetensorsWriter(path, descriptors, metadata);
        foreach (var (_, data) in tensors) writer.Write(data.Span);
        writer.Complete();
    }

    /// <summary>Closes the file; if <see cref="Complete"/> was not called, deletes the partial file.</summary>
    public void Dispose()
    {
        if (_stream is null) return;
        _stream.Dispose();
        _stream = null;
        if (!_completed)
        {
            try { File.Delete(_partialPath); }
            catch (IOException) { } // best effort: the write already failed or was abandoned
        }
    }

    private static byte[] BuildHeader(SafetensorsTensorDescriptor[] tensors, long[] ends, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (key, value) in metadata) json.WriteString(key, value);
                json.WriteEndObject();
            }
            for (int i = 0; i < tensors.Length; i++)
            {
                var tensor = tensors[i];
                json.WriteStartObject(tensor.Name);
                json.WriteString("dtype", tensor.DataType.ToSafetensorsName());
                json.WriteStartArray("shape");
                foreach (long dim in tensor.Shape) json.WriteNumberValue(dim);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(i == 0 ? 0 : ends[i - 1]);
                json.WriteNumberValue(ends[i]);
                json.WriteEndArray();
                json.WriteEndObject();
            }
            json.WriteEndObject();
        }
        // Pad with spaces so the data section starts 8-byte aligned (the prefix is 8 bytes).
        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        if (padded > SafetensorsHeader.MaxHeaderBytes) throw new ArgumentException("The header would exceed the 100 MB safetensors limit.");
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }
}
