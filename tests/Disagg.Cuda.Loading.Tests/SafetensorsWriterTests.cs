namespace Disagg.Cuda.Loading.Tests;

public sealed class SafetensorsWriterTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void StreamsDataInPiecesThatCrossTensorBoundaries()
    {
        byte[] data = RawSafetensors.Pattern(10 * 4 + 3 * 2, seed: 3);
        string path = _dir.File("streamed.safetensors");
        using (var writer = new SafetensorsWriter(path,
        [
            new SafetensorsTensorDescriptor("x", TensorDataType.Float32, [2, 5]),
            new SafetensorsTensorDescriptor("y", TensorDataType.Float16, [3]),
        ]))
        {
            Assert.Equal(46, writer.DataLength);
            for (int offset = 0; offset < data.Length; offset += 7)
            {
                writer.Write(data.AsSpan(offset, Math.Min(7, data.Length - offset)));
            }
            Assert.False(File.Exists(path)); // not visible before Complete
            writer.Complete();
        }

        using var file = SafetensorsFile.Open(path);
        Assert.Equal(data[..40], file.GetTensor("x").Span.ToArray());
        Assert.Equal(data[40..], file.GetTensor("y").Span.ToArray());
        Assert.Empty(Directory.GetFiles(_dir.Path, "*.partial"));
    }

    [Fact]
    public void AbandonedWriteLeavesNoFile()
    {
        string path = _dir.File("abandoned.safetensors");
        using (var writer = new SafetensorsWriter(path, [new SafetensorsTensorDescriptor("x", TensorDataType.Float32, [4])]))
        {
            writer.Write(new byte[8]);
        }
        Assert.Empty(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void CompleteRefusesMissingBytesAndWriteRefusesExtraBytes()
    {
        string path = _dir.File("short.safetensors");
        using var writer = new SafetensorsWriter(path,
        [
            new SafetensorsTensorDescriptor("x", TensorDataType.Float32, [2]),
            new SafetensorsTensorDescriptor("y", TensorDataType.Float32, [2]),
        ]);
        writer.Write(new byte[10]);
        var incomplete = Assert.Throws<InvalidOperationException>(writer.Complete);
        Assert.Contains("'y'", incomplete.Message);
        Assert.Throws<InvalidOperationException>(() => writer.Write(new byte[7]));
        writer.Write(new byte[6]);
        writer.Complete();
        Assert.True(File.Exists(path));
    }

    [Fact]
    public void RejectsInvalidDeclarations()
    {
        string path = _dir.File("bad.safetensors");
        Assert.Throws<ArgumentException>(() => new SafetensorsWriter(path,
            [new SafetensorsTensorDescriptor("x", TensorDataType.Float32, [1]), new SafetensorsTensorDescriptor("x", TensorDataType.Float32, [1])]));
        Assert.Throws<ArgumentException>(() => new SafetensorsWriter(path, [new SafetensorsTensorDescriptor("x", TensorDataType.Float32, [-1])]));
        Assert.Throws<ArgumentException>(() => new SafetensorsWriter(path, [new SafetensorsTensorDescriptor("__metadata__", TensorDataType.Float32, [1])]));
        Assert.Throws<ArgumentException>(() => SafetensorsWriter.WriteFile(path, [(new SafetensorsTensorDescriptor("x", TensorDataType.Float32, [2]), new byte[4])]));
        Assert.Empty(Directory.GetFiles(_dir.Path));
    }

    [Fact]
    public void EmptyCheckpointRoundTrips()
    {
        string path = _dir.File("empty.safetensors");
        SafetensorsWriter.WriteFile(path, [], new Dictionary<string, string> { ["format"] = "pt" });
        using var file = SafetensorsFile.Open(path);
        Assert.Empty(file.Tensors);
        Assert.Equal(0, file.DataLength);
        Assert.Equal("pt", file.Metadata["format"]);
    }
}
