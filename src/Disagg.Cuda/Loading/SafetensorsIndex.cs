using System.Text.Json;

namespace Disagg.Cuda.Loading;

/// <summary>
/// A sharded checkpoint's <c>model.safetensors.index.json</c>: which shard file holds each tensor.
/// </summary>
public sealed class SafetensorsIndex
{
    /// <summary>The index file name Hugging Face uses.</summary>
    public const string FileName = "model.safetensors.index.json";

    private SafetensorsIndex(string path, IReadOnlyDictionary<string, string> weightMap, IReadOnlyList<string> shardFiles, long? totalSize)
    {
        Path = path;
        WeightMap = weightMap;
        ShardFiles = shardFiles;
        TotalSize = totalSize;
    }

    /// <summary>Full path of the index file.</summary>
    public string Path { get; }

    /// <summary>Directory of the index file, where its shards lie.</summary>
    public string DirectoryPath => System.IO.Path.GetDirectoryName(Path)!;

    /// <summary>Tensor name to shard file name (relative to <see cref="DirectoryPath"/>).</summary>
    public IReadOnlyDictionary<string, string> WeightMap { get; }

    /// <summary>The distinct shard file names, in order of first appearance.</summary>
    public IReadOnlyList<string> ShardFiles { get; }

    /// <summary><c>metadata.total_size</c> (bytes of tensor data) when the index states it.</summary>
    public long? TotalSize { get; }

    /// <summary>Reads and validates an index file. Does not check that the shards exist.</summary>
    /// <exception cref="ModelLoadException">Missing, malformed, or naming a shard outside its directory.</exception>
    public static SafetensorsIndex Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string fullPath = System.IO.Path.GetFullPath(path);
        using var document = JsonFile.ReadObject(fullPath);
        var root = document.RootElement;

        long? totalSize = null;
        if (root.TryGetProperty("metadata", out var metadata) && metadata.ValueKind == JsonValueKind.Object
            && metadata.TryGetProperty("total_size", out var total) && total.ValueKind == JsonValueKind.Number)
        {
            // Some writers store it as a float; it is informational only.
            if (total.TryGetInt64(out long t)) totalSize = t;
            else if (total.TryGetDouble(out double d) && d >= 0 && d < long.MaxValue) totalSize = (long)d;
        }

        if (!root.TryGetProperty("weight_map", out var map) || map.ValueKind == JsonValueKind.Null)
        {
            throw new ModelLoadException(fullPath, "missing required field 'weight_map'.");
        }
        if (map.ValueKind != JsonValueKind.Object)
        {
            throw new ModelLoadException(fullPath, $"field 'weight_map' must be an object of tensor name to file name, but is {JsonFields.Describe(map.ValueKind)}.");
        }

        var weightMap = new Dictionary<string, string>(StringComparer.Ordinal);
        var shards = new List<string>();
        var seenShards = new HashSet<string>(StringComparer.Ordinal);
        foreach (var entry in map.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.String)
            {
                throw new ModelLoadException(fullPath, $"weight_map entry '{entry.Name}' must be a file name string, but is {JsonFields.Describe(entry.Value.ValueKind)}.");
            }
            string shard = entry.Value.GetString()!;
            if (!IsPlainFileName(shard))
            {
                throw new ModelLoadException(fullPath, $"weight_map entry '{entry.Name}' names shard '{shard}', which is not a plain file name in the index's directory.");
            }
            if (!weightMap.TryAdd(entry.Name, shard))
            {
                throw new ModelLoadException(fullPath, $"weight_map lists tensor '{entry.Name}' more than once.");
            }
            if (seenShards.Add(shard)) shards.Add(shard);
        }
        if (weightMap.Count == 0) throw new ModelLoadException(fullPath, "weight_map is empty.");
        return new SafetensorsIndex(fullPath, weightMap, shards, totalSize);
    }

    // A shard must be a sibling of the index: no directories, no "..", no rooted paths.
    private static bool IsPlainFileName(string name) =>
        name.Length > 0
        && name != "." && name != ".."
        && name.IndexOfAny(['/', '\\', '\0']) < 0
        && !System.IO.Path.IsPathRooted(name)
        && name.IndexOfAny(System.IO.Path.GetInvalidFileNameChars()) < 0;
}
