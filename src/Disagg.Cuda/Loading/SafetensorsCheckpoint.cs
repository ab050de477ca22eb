namespace Disagg.Cuda.Loading;

/// <summary>
/// The weights of a model: one <c>model.safetensors</c>, or the shards listed by <c>model.safetensors.index.json</c>.
/// Finds tensors by name across shards. Shards are opened (mapped and their headers validated) the first time one of
/// their tensors is asked for, and stay open until <see cref="Dispose"/>. Thread-safe.
/// </summary>
public sealed class SafetensorsCheckpoint : IDisposable
{
    /// <summary>The single-file weights name Hugging Face uses.</summary>
    public const string SingleFileName = "model.safetensors";

    private readonly string[] _shardPaths;
    private readonly SafetensorsFile?[] _shards;
    private readonly IReadOnlyDictionary<string, int> _shardOfTensor;
    private readonly object _openLock = new();
    private bool _disposed;

    private SafetensorsCheckpoint(string path, SafetensorsIndex? index, string[] shardPaths, IReadOnlyDictionary<string, int> shardOfTensor, SafetensorsFile? openedSingle)
    {
        Path = path;
        Index = index;
        _shardPaths = shardPaths;
        _shards = new SafetensorsFile?[shardPaths.Length];
        _shards[0] = openedSingle;
        _shardOfTensor = shardOfTensor;
    }

    /// <summary>The index file for a sharded checkpoint, or the single weights file.</summary>
    public string Path { get; }

    /// <summary>The parsed index, or null for a single-file checkpoint.</summary>
    public SafetensorsIndex? Index { get; }

    /// <summary>Full paths of the weight files.</summary>
    public IReadOnlyList<string> FilePaths => _shardPaths;

    /// <summary>Every tensor name the checkpoint declares (from the index for a sharded one).</summary>
    public IEnumerable<string> TensorNames => _shardOfTensor.Keys;

    /// <summary>Number of tensors the checkpoint declares.</summary>
    public int TensorCount => _shardOfTensor.Count;

    /// <summary>
    /// Opens the weights in <paramref name="directory"/>: the index when there is one, else <c>model.safetensors</c>.
    /// </summary>
    /// <exception cref="ModelLoadException">No weights in the directory, or they are malformed or incomplete.</exception>
    public static SafetensorsCheckpoint Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string fullDirectory = System.IO.Path.GetFullPath(directory);
        if (!Directory.Exists(fullDirectory)) throw new ModelLoadException(fullDirectory, "the model directory does not exist.");
        string indexPath = System.IO.Path.Combine(fullDirectory, SafetensorsIndex.FileName);
        if (File.Exists(indexPath)) return Open(SafetensorsIndex.Load(indexPath));
        string singlePath = System.IO.Path.Combine(fullDirectory, SingleFileName);
        if (File.Exists(singlePath)) return OpenFile(singlePath);
        throw new ModelLoadException(fullDirectory, DescribeMissingWeights(fullDirectory));
    }

    /// <summary>Opens a sharded checkpoint. Every shard the index names must exist; they are mapped lazily.</summary>
    /// <exception cref="ModelLoadException">A shard file is missing.</exception>
    public static SafetensorsCheckpoint Open(SafetensorsIndex index)
    {
        ArgumentNullException.ThrowIfNull(index);
        var shardNumber = new Dictionary<string, int>(StringComparer.Ordinal);
        var paths = new string[index.ShardFiles.Count];
        for (int i = 0; i < paths.Length; i++)
        {
            paths[i] = System.IO.Path.Combine(index.DirectoryPath, index.ShardFiles[i]);
            shardNumber.Add(index.ShardFiles[i], i);
            if (!File.Exists(paths[i]))
            {
                throw new ModelLoadException(paths[i], $"the shard file is missing (listed in {index.Path}).");
            }
        }
        var shardOfTensor = new Dictionary<string, int>(index.WeightMap.Count, StringComparer.Ordinal);
        foreach (var (tensor, shard) in index.WeightMap) shardOfTensor.Add(tensor, shardNumber[shard]);
        return new SafetensorsCheckpoint(index.Path, index, paths, shardOfTensor, openedSingle: null);
    }

    /// <summary>Opens a single <c>.safetensors</c> file as a checkpoint.</summary>
    /// <exception cref="ModelLoadException">The file is missing or malformed.</exception>
    public static SafetensorsCheckpoint OpenFile(string path)
    {
        var file = SafetensorsFile.Open(path);
        var shardOfTensor = new Dictionary<string, int>(file.Tensors.Count, StringComparer.Ordinal);
        foreach (var tensor in file.Tensors) shardOfTensor.Add(tensor.Name, 0);
        return new SafetensorsCheckpoint(file.Path, index: null, [file.Path], shardOfTensor, file);
    }

    /// <summary>Whether the checkpoint declares a tensor called <paramref name="name"/>.</summary>
    public bool ContainsTensor(string name) => _shardOfTensor.ContainsKey(name);

    /// <summary>Finds tensor <paramref name="name"/>, opening its shard if needed.</summary>
    /// <returns>False when no shard declares the tensor.</returns>
    /// <exception cref="ModelLoadException">The shard is malformed, or lacks a tensor the index assigns to it.</exception>
    public bool TryGetTensor(string name, out SafetensorsTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!_shardOfTensor.TryGetValue(name, out int shard))
        {
            tensor = default;
            return false;
        }
        var file = Shard(shard);
        if (file.TryGetTensor(name, out tensor)) return true;
        throw new ModelLoadException(file.Path, $"{Index?.Path ?? "the index"} assigns tensor '{name}' to this shard, but the shard does not contain it.");
    }

    /// <summary>The tensor called <paramref name="name"/>, opening its shard if needed.</summary>
    /// <exception cref="ModelLoadException">No shard has the tensor, or its shard is missing or malformed.</exception>
    public SafetensorsTensor GetTensor(string name)
    {
        if (TryGetTensor(name, out var tensor)) return tensor;
        string where = Index is null ? "the checkpoint" : $"any of the {_shardPaths.Length} shards listed by the index";
        throw new ModelLoadException(Path, $"tensor '{name}' is missing from {where}.");
    }

    /// <summary>Opens every shard now (mapping them and validating their headers).</summary>
    public void OpenAllShards()
    {
        for (int i = 0; i < _shards.Length; i++) _ = Shard(i);
    }

    /// <summary>Unmaps every open shard.</summary>
    public void Dispose()
    {
        lock (_openLock)
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var shard in _shards) shard?.Dispose();
        }
    }

    private SafetensorsFile Shard(int i)
    {
        var file = Volatile.Read(ref _shards[i]);
        if (file is not null && !_disposed) return file;
        lock (_openLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            file = _shards[i];
            if (file is null)
            {
                file = SafetensorsFile.Open(_shardPaths[i]);
                Volatile.Write(ref _shards[i], file);
            }
            return file;
        }
    }

    private static string DescribeMissingWeights(string directory)
    {
        bool hasPytorchWeights = File.Exists(System.IO.Path.Combine(directory, "pytorch_model.bin"))
            || File.Exists(System.IO.Path.Combine(directory, "pytorch_model.bin.index.json"));
        return hasPytorchWeights
            ? $"the directory holds only PyTorch pickle weights (pytorch_model.bin); convert them to {SingleFileName}, which is the only format supported."
            : $"the directory has no weights: neither {SingleFileName} nor {SafetensorsIndex.FileName} exists.";
    }
}
