using System.Buffers.Binary;
using System.Text;

namespace Disagg.Cuda.Loading.Tests;

public sealed class SafetensorsFileTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void RoundTripsTensorsOfSeveralTypesWithMetadata()
    {
        byte[] weights = RawSafetensors.Floats(1.5f, -2f, 3.25f, 0f, 7f, -0.5f);
        byte[] bf16 = RawSafetensors.Pattern(2 * 3 * 2, seed: 1);
        byte[] ids = new byte[8 * 4];
        for (int i = 0; i < 4; i++) BinaryPrimitives.WriteInt64LittleEndian(ids.AsSpan(i * 8), 1_000_000_000_000L + i);
        string path = _dir.File("model.safetensors");
        SafetensorsWriter.WriteFile(path,
        [
            (new SafetensorsTensorDescriptor("a.weight", TensorDataType.Float32, [2, 3]), weights),
            (new SafetensorsTensorDescriptor("b", TensorDataType.BFloat16, [2, 3]), bf16),
            (new SafetensorsTensorDescriptor("scalar", TensorDataType.Float32, []), RawSafetensors.Floats(42f)),
            (new SafetensorsTensorDescriptor("empty", TensorDataType.Float16, [0, 5]), Array.Empty<byte>()),
            (new SafetensorsTensorDescriptor("ids", TensorDataType.Int64, [4]), ids),
        ], new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" });

        using var file = SafetensorsFile.Open(path);

        Assert.Equal(["a.weight", "b", "scalar", "empty", "ids"], file.Tensors.Select(t => t.Name));
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal("ünïcode \"quoted\"", file.Metadata["note"]);
        Assert.Equal(0, file.DataStart % 8);
        Assert.Equal(new FileInfo(path).Length, file.FileLength);

        var a = file.GetTensor("a.weight");
        Assert.Equal(TensorDataType.Float32, a.DataType);
        Assert.Equal([2L, 3L], a.Shape.ToArray());
        Assert.Equal(24, a.ByteLength);
        Assert.Equal(6, a.Info.ElementCount);
        Assert.Equal([1.5f, -2f, 3.25f, 0f, 7f, -0.5f], RawSafetensors.ToFloats(a.Span));
        Assert.Equal(path, a.FilePath);

        Assert.Equal(bf16, file.GetTensor("b").Span.ToArray());
        var scalar = file.GetTensor("scalar");
        Assert.Empty(scalar.Shape);
        Assert.Equal(1, scalar.Info.ElementCount);
        Assert.Equal([42f], RawSafetensors.ToFloats(scalar.Span));
        Assert.Equal(0, file.GetTensor("empty").Span.Length);
        var idSpan = file.GetTensor("ids").Span;
        Assert.Equal(1_000_000_000_003L, BinaryPrimitives.ReadInt64LittleEndian(idSpan[24..]));
    }

    [Fact]
    public void DataPointerAndPartialSpansAddressTheSameBytes()
    {
        byte[] data = RawSafetensors.Pattern(64, seed: 7);
        string path = _dir.File("x.safetensors");
        SafetensorsWriter.WriteFile(path,
        [
            (new SafetensorsTensorDescriptor("first", TensorDataType.UInt8, [16]), data.AsMemory(0, 16)),
            (new SafetensorsTensorDescriptor("second", TensorDataType.UInt8, [48]), data.AsMemory(16)),
        ]);
        using var file = SafetensorsFile.Open(path);
        var second = file.GetTensor("second");

        Assert.Equal(data[20..30], second.GetSpan(4, 10).ToArray());
        Assert.Equal(data[16], System.Runtime.InteropServices.Marshal.ReadByte(second.DataPointer));
        Assert.Equal(data[63], System.Runtime.InteropServices.Marshal.ReadByte(second.DataPointer, 47));
        Assert.Throws<ArgumentOutOfRangeException>(() => second.GetSpan(40, 9).Length);
        Assert.Throws<ArgumentOutOfRangeException>(() => second.GetSpan(-1, 1).Length);
    }

    [Fact]
    public void MapsTensorsBeyondTwoGigabytesWithoutReadingThem()
    {
        // A sparse file: 3 GB of data that occupies no disk and is never paged in, apart from the bytes read.
        const long Big = 3_000_000_000;
        string header = $$$"""{"small":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"big":{"dtype":"U8","shape":[{{{Big}}}],"data_offsets":[4,{{{Big + 4}}}]}}""";
        string path = _dir.File("big.safetensors");
        using (var stream = File.Create(path))
        {
            stream.Write(RawSafetensors.Build(header, RawSafetensors.Floats(5f)));
            stream.SetLength(stream.Length + Big);
            stream.Position = stream.Length - 1;
            stream.WriteByte(0xAB);
        }
        long before = GC.GetAllocatedBytesForCurrentThread(); // this thread only: other tests run in parallel
        using var file = SafetensorsFile.Open(path);
        var big = file.GetTensor("big");

        Assert.Equal(Big, big.ByteLength);
        Assert.Equal(0xAB, big.GetSpan(Big - 1, 1)[0]);
        Assert.Equal(0, big.GetSpan(Big / 2, 1)[0]);
        Assert.Equal([5f], RawSafetensors.ToFloats(file.GetTensor("small").Span));
        Assert.Throws<InvalidOperationException>(() => big.Span.Length);
        Assert.True(GC.GetAllocatedBytesForCurrentThread() - before < 1_000_000);
    }

    [Fact]
    public void DisposedFileRefusesAccess()
    {
        string path = _dir.File("x.safetensors");
        SafetensorsWriter.WriteFile(path, [(new SafetensorsTensorDescriptor("t", TensorDataType.Float32, [1]), RawSafetensors.Floats(1f))]);
        var file = SafetensorsFile.Open(path);
        var tensor = file.GetTensor("t");
        file.Dispose();
        file.Dispose(); // idempotent

        Assert.Throws<ObjectDisposedException>(() => tensor.Span.Length);
        Assert.Throws<ObjectDisposedException>(() => file.TryGetTensor("t", out _));
    }

    [Fact]
    public void UnknownTensorNameIsATypedError()
    {
        string path = _dir.File("x.safetensors");
        SafetensorsWriter.WriteFile(path, [(new SafetensorsTensorDescriptor("t", TensorDataType.Float32, [1]), RawSafetensors.Floats(1f))]);
        using var file = SafetensorsFile.Open(path);

        Assert.False(file.TryGetTensor("nope", out _));
        var ex = Assert.Throws<ModelLoadException>(() => file.GetTensor("nope"));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains("'nope'", ex.Message);
    }

    [Fact]
    public void AcceptsAHandWrittenHeaderWithUnknownKeysAndTrailingSpaces()
    {
        string header = """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":{"nested":[1,2]}}}    """;
        string path = WriteRaw(RawSafetensors.Build(header, RawSafetensors.Floats(1f, 2f)));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([1f, 2f], RawSafetensors.ToFloats(file.GetTensor("w").Span));
        Assert.Empty(file.Metadata);
    }

    [Fact]
    public void ReadsTensorsStoredOutOfHeaderOrder()
    {
        string header = """{"late":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"early":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""";
        string path = WriteRaw(RawSafetensors.Build(header, RawSafetensors.Floats(10f, 20f)));
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([10f], RawSafetensors.ToFloats(file.GetTensor("early").Span));
        Assert.Equal([20f], RawSafetensors.ToFloats(file.GetTensor("late").Span));
    }

    [Fact]
    public void MissingFileIsATypedError()
    {
        string path = _dir.File("absent.safetensors");
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains("does not exist", ex.Message);
    }

    public static TheoryData<string, string> MalformedHeaders => new()
    {
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]""", "not valid JSON" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x""", "not valid JSON" },
        { """[1,2]""", "not a JSON object" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},}""", "not valid JSON" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}""", "out of range" },
        { """{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}""", "needs 12 bytes" },
        { """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", "trailing bytes" },
        { """{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", "belong to no tensor" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", "overlaps" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}""", "end before they begin" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}""", "negative data_offsets" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}}""", "exactly two numbers" },
        { """{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}""", "negative dimension" },
        { """{"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}""", "64-bit integers" },
        { """{"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}}""", "must be an array" },
        { """{"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}""", "unknown dtype 'Q4'" },
        { """{"w":{"dtype":3,"shape":[2],"data_offsets":[0,8]}}""", "\"dtype\" must be a string" },
        { """{"w":{"shape":[2],"data_offsets":[0,8]}}""", "no \"dtype\"" },
        { """{"w":{"dtype":"F32","data_offsets":[0,8]}}""", "no \"shape\"" },
        { """{"w":{"dtype":"F32","shape":[2]}}""", "no \"data_offsets\"" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[0],"data_offsets":[8,8]}}""", "more than once" },
        { """{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}""", "more than once" },
        { """{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}""", "too large" },
        { """{"__metadata__":{"n":1},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", "must be a string" },
        { """{"__metadata__":[],"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", "must be an object" },
        { """{"w":[]}""", "must be an object" },
        { """{"w":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}}""", "must hold 64-bit integers, but holds an array" },
        { """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"deep":[[[[[[[[1]]]]]]]]}}""", "not valid JSON" },
        { "", "not valid JSON" },
    };

    [Theory]
    [MemberData(nameof(MalformedHeaders))]
    public void MalformedHeaderIsATypedErrorNamingFileAndProblem(string header, string problem)
    {
        string path = WriteRaw(RawSafetensors.Build(header, RawSafetensors.Floats(1f, 2f)));
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        Assert.Equal(path, ex.FilePath);
        Assert.StartsWith(path + ": ", ex.Message);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void InvalidUtf8InTheHeaderIsATypedError()
    {
        byte[] header = Encoding.UTF8.GetBytes("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""");
        header[2] = 0xFF; // inside the tensor name
        string path = WriteRaw(RawSafetensors.Build(header, RawSafetensors.Floats(1f, 2f)));
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        Assert.Contains("not valid JSON", ex.Message);
    }

    [Fact]
    public void FileShorterThanTheLengthPrefixIsTruncated()
    {
        string path = WriteRaw([1, 2, 3]);
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public void EmptyFileIsTruncated()
    {
        string path = WriteRaw([]);
        Assert.Contains("truncated", Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path)).Message);
    }

    [Fact]
    public void HeaderLongerThanTheFileIsTruncated()
    {
        byte[] valid = RawSafetensors.Build("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", RawSafetensors.Floats(1f, 2f));
        string path = WriteRaw(valid[..30]);
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        Assert.Contains("truncated", ex.Message);
        Assert.Contains("header claims", ex.Message);
    }

    [Fact]
    public void DataCutShortIsOutOfRange()
    {
        byte[] valid = RawSafetensors.Build("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", RawSafetensors.Floats(1f, 2f));
        string path = WriteRaw(valid[..^3]);
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        Assert.Contains("out of range", ex.Message);
        Assert.Contains("truncated", ex.Message);
    }

    [Theory]
    [InlineData(100_000_001UL)]
    [InlineData(ulong.MaxValue)]
    [InlineData((ulong)long.MaxValue + 1)]
    public void OversizedHeaderLengthIsRejectedBeforeReading(ulong claimed)
    {
        byte[] bytes = new byte[64];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimed);
        string path = WriteRaw(bytes);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsFile.Open(path));
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Contains("exceeds", ex.Message);
        Assert.True(allocated < 1_000_000, $"allocated {allocated} bytes");
    }

    private string WriteRaw(byte[] bytes)
    {
        string path = _dir.File(Guid.NewGuid().ToString("N") + ".safetensors");
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
