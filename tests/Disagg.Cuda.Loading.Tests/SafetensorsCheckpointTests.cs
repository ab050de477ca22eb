using System.Text.Json;

namespace Disagg.Cuda.Loading.Tests;

public sealed class SafetensorsCheckpointTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private void WriteShard(string fileName, params (string Name, float[] Values)[] tensors) =>
        SafetensorsWriter.WriteFile(_dir.File(fileName),
            [.. tensors.Select(t => (new SafetensorsTensorDescriptor(t.Name, TensorDataType.Float32, [t.Values.Length]), (ReadOnlyMemory<byte>)RawSafetensors.Floats(t.Values)))]);

    private string WriteIndex(Dictionary<string, string> weightMap, long totalSize = 24)
    {
        string json = JsonSerializer.Serialize(new { metadata = new { total_size = totalSize }, weight_map = weightMap });
        return _dir.WriteText(SafetensorsIndex.FileName, json);
    }

    private void WriteTwoShardCheckpoint()
    {
        WriteShard("model-00001-of-00002.safetensors", ("a", [1f, 2f]), ("b", [3f]));
        WriteShard("model-00002-of-00002.safetensors", ("c", [4f, 5f, 6f]));
        WriteIndex(new()
        {
            ["a"] = "model-00001-of-00002.safetensors",
            ["b"] = "model-00001-of-00002.safetensors",
            ["c"] = "model-00002-of-00002.safetensors",
        });
    }

    [Fact]
    public void FindsTensorsAcrossShards()
    {
        WriteTwoShardCheckpoint();
        using var checkpoint = SafetensorsCheckpoint.Open(_dir.Path);

        Assert.NotNull(checkpoint.Index);
        Assert.Equal(24, checkpoint.Index!.TotalSize);
        Assert.Equal(_dir.File(SafetensorsIndex.FileName), checkpoint.Path);
        Assert.Equal([_dir.File("model-00001-of-00002.safetensors"), _dir.File("model-00002-of-00002.safetensors")], checkpoint.FilePaths);
        Assert.Equal(["a", "b", "c"], checkpoint.TensorNames.Order());
        Assert.Equal([1f, 2f], RawSafetensors.ToFloats(checkpoint.GetTensor("a").Span));
        Assert.Equal([4f, 5f, 6f], RawSafetensors.ToFloats(checkpoint.GetTensor("c").Span));
        Assert.Equal(_dir.File("model-00002-of-00002.safetensors"), checkpoint.GetTensor("c").FilePath);
    }

    [Fact]
    public void SingleFileCheckpointIsFoundByDirectory()
    {
        WriteShard(SafetensorsCheckpoint.SingleFileName, ("w", [9f]));
        using var checkpoint = SafetensorsCheckpoint.Open(_dir.Path);
        Assert.Null(checkpoint.Index);
        Assert.Equal([9f], RawSafetensors.ToFloats(checkpoint.GetTensor("w").Span));
        Assert.True(checkpoint.ContainsTensor("w"));
        Assert.Equal(1, checkpoint.TensorCount);
    }

    [Fact]
    public void OpensShardsOnlyWhenNeeded()
    {
        WriteTwoShardCheckpoint();
        File.WriteAllBytes(_dir.File("model-00002-of-00002.safetensors"), [1, 2, 3]); // corrupt the second shard
        using var checkpoint = SafetensorsCheckpoint.Open(_dir.Path);

        Assert.Equal([3f], RawSafetensors.ToFloats(checkpoint.GetTensor("b").Span));
        var ex = Assert.Throws<ModelLoadException>(() => checkpoint.GetTensor("c"));
        Assert.Equal(_dir.File("model-00002-of-00002.safetensors"), ex.FilePath);
        Assert.Contains("truncated", ex.Message);
        Assert.Throws<ModelLoadException>(checkpoint.OpenAllShards);
    }

    [Fact]
    public void TensorMissingFromEveryShardIsATypedError()
    {
        WriteTwoShardCheckpoint();
        using var checkpoint = SafetensorsCheckpoint.Open(_dir.Path);
        Assert.False(checkpoint.TryGetTensor("model.norm.weight", out _));
        var ex = Assert.Throws<ModelLoadException>(() => checkpoint.GetTensor("model.norm.weight"));
        Assert.Equal(_dir.File(SafetensorsIndex.FileName), ex.FilePath);
        Assert.Contains("'model.norm.weight' is missing from any of the 2 shards", ex.Message);
    }

    [Fact]
    public void MissingShardFileIsReportedAtOpen()
    {
        WriteTwoShardCheckpoint();
        File.Delete(_dir.File("model-00002-of-00002.safetensors"));
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Equal(_dir.File("model-00002-of-00002.safetensors"), ex.FilePath);
        Assert.Contains("shard file is missing", ex.Message);
    }

    [Fact]
    public void IndexThatAssignsATensorToTheWrongShardIsATypedError()
    {
        WriteShard("s1.safetensors", ("a", [1f]));
        WriteShard("s2.safetensors", ("b", [2f]));
        WriteIndex(new() { ["a"] = "s2.safetensors", ["b"] = "s2.safetensors" });
        using var checkpoint = SafetensorsCheckpoint.Open(_dir.Path);
        var ex = Assert.Throws<ModelLoadException>(() => checkpoint.GetTensor("a"));
        Assert.Equal(_dir.File("s2.safetensors"), ex.FilePath);
        Assert.Contains("does not contain it", ex.Message);
    }

    [Theory]
    [InlineData("../outside.safetensors")]
    [InlineData("/etc/passwd")]
    [InlineData("sub/dir.safetensors")]
    [InlineData("..")]
    [InlineData("")]
    public void IndexNamingAShardOutsideItsDirectoryIsRejected(string shard)
    {
        WriteIndex(new() { ["a"] = shard });
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Equal(_dir.File(SafetensorsIndex.FileName), ex.FilePath);
        Assert.Contains("not a plain file name", ex.Message);
    }

    [Theory]
    [InlineData("""{"metadata":{}}""", "missing required field 'weight_map'")]
    [InlineData("""{"weight_map":[]}""", "must be an object")]
    [InlineData("""{"weight_map":{"a":1}}""", "must be a file name string")]
    [InlineData("""{"weight_map":{}}""", "weight_map is empty")]
    [InlineData("""{"weight_map":{"a":"x.safetensors","a":"y.safetensors"}}""", "not valid JSON")]
    [InlineData("""{"weight_map":{"a":"x.safetensors"}""", "not valid JSON")]
    [InlineData("""[]""", "must hold a JSON object")]
    public void MalformedIndexIsATypedError(string json, string problem)
    {
        string path = _dir.WriteText(SafetensorsIndex.FileName, json);
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Equal(path, ex.FilePath);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void DirectoryWithoutWeightsIsATypedError()
    {
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Equal(_dir.Path, ex.FilePath);
        Assert.Contains("neither model.safetensors nor model.safetensors.index.json", ex.Message);
    }

    [Fact]
    public void DirectoryWithOnlyPickleWeightsSaysSo()
    {
        File.WriteAllBytes(_dir.File("pytorch_model.bin"), [0]);
        var ex = Assert.Throws<ModelLoadException>(() => SafetensorsCheckpoint.Open(_dir.Path));
        Assert.Contains("pytorch_model.bin", ex.Message);
    }

    [Fact]
    public void ConcurrentLookupsOpenEachShardOnce()
    {
        WriteTwoShardCheckpoint();
        using var checkpoint = SafetensorsCheckpoint.Open(_dir.Path);
        var seen = new System.Collections.Concurrent.ConcurrentBag<nint>();
        Parallel.For(0, 64, i => seen.Add(checkpoint.GetTensor(i % 2 == 0 ? "a" : "c").DataPointer));
        Assert.Equal(2, seen.Distinct().Count());
    }
}
