using System.Collections.Immutable;

namespace Disagg.Cuda.Loading;

/// <summary>
/// A tensor inside an open <see cref="SafetensorsFile"/>: its header entry plus access to its bytes in the mapping.
/// Valid while the file is open; the bytes are never copied unless the caller copies them.
/// </summary>
public readonly unsafe struct SafetensorsTensor
{
    private readonly SafetensorsFile _file;

    internal SafetensorsTensor(SafetensorsFile file, SafetensorsTensorInfo info)
    {
        _file = file;
        Info = info;
    }

    /// <summary>The header entry.</summary>
    public SafetensorsTensorInfo Info { get; }

    /// <summary>The tensor's name.</summary>
    public string Name => Info.Name;

    /// <summary>Element type.</summary>
    public TensorDataType DataType => Info.DataType;

    /// <summary>Dimensions, outermost first.</summary>
    public ImmutableArray<long> Shape => Info.Shape;

    /// <summary>Bytes of data.</summary>
    public long ByteLength => Info.ByteLength;

    /// <summary>The file that holds the tensor.</summary>
    public string FilePath => _file.Path;

    /// <summary>
    /// Address of the tensor's first byte in the mapping (row-major, little-endian elements). Valid until the file is disposed.
    /// Not necessarily aligned to the element size.
    /// </summary>
    public nint DataPointer => (nint)_file.DataPointer(Info);

    /// <summary>All of the tensor's bytes.</summary>
    /// <exception cref="InvalidOperationException">The tensor is 2 GiB or larger; read it in pieces with <see cref="GetSpan(long, int)"/>.</exception>
    public ReadOnlySpan<byte> Span
    {
        get
        {
            if (Info.ByteLength > int.MaxValue)
            {
                throw new InvalidOperationException($"Tensor '{Name}' has {Info.ByteLength} bytes, too many for one span; read it in pieces with GetSpan(offset, length).");
            }
            return new ReadOnlySpan<byte>(_file.DataPointer(Info), (int)Info.ByteLength);
        }
    }

    /// <summary><paramref name="length"/> bytes of the tensor starting <paramref name="offset"/> bytes into it.</summary>
    public ReadOnlySpan<byte> GetSpan(long offset, int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset > Info.ByteLength - length)
        {
            throw new ArgumentOutOfRangeException(nameof(length), $"Bytes {offset}..{offset + length} lie outside tensor '{Name}' ({Info.ByteLength} bytes).");
        }
        return new ReadOnlySpan<byte>(_file.DataPointer(Info) + offset, length);
    }

    /// <inheritdoc />
    public override string ToString() => Info.ToString();
}
