using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace Disagg.Cuda.Loading;

/// <summary>
/// One <c>.safetensors</c> file, memory-mapped read-only. Opening it reads and validates the header only; tensor bytes
/// are paged in by the OS when they are read, so a checkpoint larger than free RAM still opens, and nothing is copied
/// into managed memory.
/// </summary>
/// <remarks>
/// The file owns the mapping: spans and pointers obtained from its tensors are valid until <see cref="Dispose"/>.
/// Reading from several threads at once is safe; disposing while another thread reads is not.
/// The file must not be truncated by another process while it is open (the OS would fault on the missing pages).
/// </remarks>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private const int LengthPrefixBytes = sizeof(ulong);

    private readonly MemoryMappedFile _mapping;
    private readonly MemoryMappedViewAccessor _view;
    private readonly SafetensorsHeader _header;
    private nint _base; // start of the file in memory; 0 once disposed

    private SafetensorsFile(string path, MemoryMappedFile mapping, MemoryMappedViewAccessor view, byte* fileStart, long headerLength, long fileLength, SafetensorsHeader header)
    {
        Path = path;
        _mapping = mapping;
        _view = view;
        _base = (nint)fileStart;
        HeaderLength = headerLength;
        FileLength = fileLength;
        _header = header;
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>Bytes of the JSON header (not counting the 8-byte length prefix).</summary>
    public long HeaderLength { get; }

    /// <summary>Size of the file in bytes.</summary>
    public long FileLength { get; }

    /// <summary>File offset where the data section (and tensor offset 0) begins.</summary>
    public long DataStart => LengthPrefixBytes + HeaderLength;

    /// <summary>Bytes in the data section.</summary>
    public long DataLength => FileLength - DataStart;

    /// <summary>Every tensor, in the order of their data in the file.</summary>
    public IReadOnlyList<SafetensorsTensorInfo> Tensors => _header.TensorsInFileOrder;

    /// <summary>The header's <c>__metadata__</c> entries (empty when it has none).</summary>
    public IReadOnlyDictionary<string, string> Metadata => _header.Metadata;

    /// <summary>Opens, maps and validates <paramref name="path"/>.</summary>
    /// <exception cref="ModelLoadException">The file is missing, unreadable, truncated or malformed.</exception>
    public static SafetensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        FileStream stream;
        try
        {
            stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelLoadException(fullPath, "the safetensors file does not exist.", ex);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(fullPath, $"the safetensors file cannot be opened: {ex.Message}", ex);
        }

        MemoryMappedFile? mapping = null;
        MemoryMappedViewAccessor? view = null;
        byte* fileStart = null;
        try
        {
            long fileLength = stream.Length;
            if (fileLength < LengthPrefixBytes)
            {
                throw new ModelLoadException(fullPath, $"the file is truncated: it has {fileLength} bytes, fewer than the 8-byte header length prefix.");
            }
            Span<byte> prefix = stackalloc byte[LengthPrefixBytes];
            stream.ReadExactly(prefix);
            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
            if (headerLength > SafetensorsHeader.MaxHeaderBytes)
            {
                throw new ModelLoadException(fullPath, $"the header length {headerLength} exceeds the {SafetensorsHeader.MaxHeaderBytes}-byte limit (corrupt or not a safetensors file).");
            }
            if ((long)headerLength > fileLength - LengthPrefixBytes)
            {
                throw new ModelLoadException(fullPath, $"the file is truncated: the header claims {headerLength} bytes but only {fileLength - LengthPrefixBytes} follow the length prefix.");
            }

            mapping = MemoryMappedFile.CreateFromFile(stream, mapName: null, capacity: 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = mapping.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref fileStart);
            fileStart += view.PointerOffset;

            var headerBytes = new ReadOnlySpan<byte>(fileStart + LengthPrefixBytes, (int)headerLength);
            long dataLength = fileLength - LengthPrefixBytes - (long)headerLength;
            var header = SafetensorsHeader.Parse(headerBytes, dataLength, fullPath);
            return new SafetensorsFile(fullPath, mapping, view, fileStart, (long)headerLength, fileLength, header);
        }
        catch (Exception ex)
        {
            if (fileStart is not null) view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            mapping?.Dispose();
            stream.Dispose(); // no-op when the mapping already owns and closed it
            if (ex is ModelLoadException) throw;
            if (ex is IOException or UnauthorizedAccessException)
            {
                throw new ModelLoadException(fullPath, $"the safetensors file cannot be read or mapped: {ex.Message}", ex);
            }
            throw;
        }
    }

    /// <summary>Whether the file has a tensor called <paramref name="name"/>.</summary>
    public bool ContainsTensor(string name) => _header.ByName.ContainsKey(name);

    /// <summary>Finds tensor <paramref name="name"/>.</summary>
    public bool TryGetTensor(string name, out SafetensorsTensor tensor)
    {
        ObjectDisposedException.ThrowIf(_base == 0, this);
        if (_header.ByName.TryGetValue(name, out var info))
        {
            tensor = new SafetensorsTensor(this, info);
            return true;
        }
        tensor = default;
        return false;
    }

    /// <summary>The tensor called <paramref name="name"/>.</summary>
    /// <exception cref="ModelLoadException">The file has no such tensor.</exception>
    public SafetensorsTensor GetTensor(string name)
    {
        if (TryGetTensor(name, out var tensor)) return tensor;
        throw new ModelLoadException(Path, $"the file has no tensor named '{name}'.");
    }

    /// <summary>Address of the first byte of <paramref name="info"/>'s data; valid until this file is disposed.</summary>
    internal byte* DataPointer(SafetensorsTensorInfo info)
    {
        nint start = _base;
        ObjectDisposedException.ThrowIf(start == 0, this);
        return (byte*)start + DataStart + info.DataOffset;
    }

    /// <summary>Unmaps the file. Spans and pointers taken from its tensors must no longer be used.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _base, 0) == 0) return;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _mapping.Dispose();
    }

    /// <inheritdoc />
    public override string ToString() => $"{Path} ({Tensors.Count} tensors, {FileLength} bytes)";
}
