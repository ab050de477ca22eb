using System.Buffers.Binary;
using Disagg.Tokenization;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace Disagg.Cuda.Loading.Tests;

/// <summary>
/// Untrusted model files: mutations of the real fixtures (tests/Fixtures/models) — tokenizer.json, tokenizer_config.json,
/// config.json, generation_config.json, the safetensors header, the shard index — either load or fail with a
/// <see cref="ModelLoadException"/>: never another exception, never a hang, never an allocation out of proportion to the file.
/// </summary>
[Trait("Category", "Reliability")]
public sealed class FixtureFuzzTests : IDisposable
{
    private static readonly string Models = FindModels();
    private static readonly TimeSpan HangBound = TimeSpan.FromSeconds(30); // a bound on a hang, not a speed assertion
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static string FindModels()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "Fixtures", "models");
            if (Directory.Exists(candidate)) return candidate;
        }
        throw new DirectoryNotFoundException("tests/Fixtures/models not found above " + AppContext.BaseDirectory);
    }

    private static byte[] Fixture(string model, string file) => File.ReadAllBytes(Path.Combine(Models, model, file));

    /// <summary>
    /// Runs <paramref name="load"/> on a thread of its own: it must end within <see cref="HangBound"/>, allocate at most
    /// <paramref name="allocationBudget"/> bytes, and throw nothing but <see cref="ModelLoadException"/>.
    /// </summary>
    private int _rejected, _tried;

    private void AssertLoadsOrFailsTyped(Action load, long allocationBudget, string what)
    {
        _tried++;
        Exception? error = null;
        long allocated = 0;
        var thread = new Thread(() =>
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            try { load(); }
            catch (Exception ex) { error = ex; }
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        }, maxStackSize: 1 << 20) { IsBackground = true };
        thread.Start();
        Assert.True(thread.Join(HangBound), $"{what}: the loader did not return within {HangBound}.");
        if (error is not null and not ModelLoadException) Assert.Fail($"{what}: {error.GetType().Name}: {error.Message}");
        if (error is not null) _rejected++;
        Assert.True(allocated < allocationBudget, $"{what}: allocated {allocated:N0} bytes (budget {allocationBudget:N0}).");
    }

    /// <summary>The mutations must reach the loaders' error paths, not only harmless bytes.</summary>
    private void AssertErrorPathsExercised() =>
        Assert.True(_rejected >= _tried / 10, $"Only {_rejected} of {_tried} mutated files were rejected: the fuzzing barely reached the parser.");

    public static TheoryData<string> TokenizerModels() => new("llama3", "llama2", "qwen2");

    [Theory]
    [MemberData(nameof(TokenizerModels))]
    public void Mutated_tokenizer_json_loads_or_fails_typed(string model)
    {
        var valid = Fixture(model, "tokenizer.json");
        var config = Fixture(model, "tokenizer_config.json");
        Prop.ForAll(FileMutation.Arbitrary(), mutation =>
        {
            var bytes = mutation.Apply(valid);
            AssertLoadsOrFailsTyped(() =>
            {
                var tokenizer = ModelTokenizer.Load(new MemoryStream(bytes), new MemoryStream(config));
                // A tokenizer that loaded must also work, on text that touches its special tokens and byte fallback.
                var ids = tokenizer.Encode("Hello, world! 1234 ünïcødé 🚀");
                tokenizer.Decode(ids);
            }, 64L << 20, $"{model}/tokenizer.json, {mutation}");
        }).Check(60);
        AssertErrorPathsExercised();
    }

    [Theory]
    [MemberData(nameof(TokenizerModels))]
    public void Mutated_tokenizer_config_loads_or_fails_typed(string model)
    {
        var tokenizer = Fixture(model, "tokenizer.json");
        var valid = Fixture(model, "tokenizer_config.json");
        Prop.ForAll(FileMutation.Arbitrary(), mutation =>
        {
            var bytes = mutation.Apply(valid);
            AssertLoadsOrFailsTyped(() => ModelTokenizer.Load(new MemoryStream(tokenizer), new MemoryStream(bytes)),
                64L << 20, $"{model}/tokenizer_config.json, {mutation}");
        }).Check(40);
        AssertErrorPathsExercised();
    }

    public static TheoryData<string> AllModels() => new("llama3", "llama2", "qwen2", "qwen3", "mistral");

    [Theory]
    [MemberData(nameof(AllModels))]
    public void Mutated_config_and_generation_config_load_or_fail_typed(string model)
    {
        var config = Fixture(model, "config.json");
        var generation = Fixture(model, "generation_config.json");
        string configPath = _dir.File($"{model}-config.json"), generationPath = _dir.File($"{model}-generation_config.json");
        Prop.ForAll(FileMutation.Arbitrary(), mutation =>
        {
            File.WriteAllBytes(configPath, mutation.Apply(config));
            AssertLoadsOrFailsTyped(() => ModelConfig.Load(configPath), 4L << 20, $"{model}/config.json, {mutation}");
            File.WriteAllBytes(generationPath, mutation.Apply(generation));
            AssertLoadsOrFailsTyped(() => GenerationConfig.Load(generationPath), 4L << 20, $"{model}/generation_config.json, {mutation}");
        }).Check(150);
        AssertErrorPathsExercised();
    }

    [Theory]
    [MemberData(nameof(AllModels))]
    public void Mutated_safetensors_headers_of_real_checkpoints_parse_or_fail_typed(string model)
    {
        string file = Directory.GetFiles(Path.Combine(Models, model), "*.safetensors").Order(StringComparer.Ordinal).First();
        var bytes = File.ReadAllBytes(file);
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        var header = bytes[8..(8 + headerLength)];
        string path = _dir.File($"{model}.safetensors");
        Prop.ForAll(FileMutation.Arbitrary(), mutation =>
        {
            var mutated = mutation.Apply(header);
            var prefix = new byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(prefix, (ulong)mutated.Length);
            File.WriteAllBytes(path, [.. prefix, .. mutated, .. bytes[(8 + headerLength)..]]);
            AssertLoadsOrFailsTyped(() =>
            {
                using var checkpoint = SafetensorsFile.Open(path);
                foreach (var tensor in checkpoint.Tensors) _ = checkpoint.GetTensor(tensor.Name).Span.Length;
            }, (4L << 20) + 64L * mutated.Length, $"{model} safetensors header, {mutation}");
        }).Check(200);
        AssertErrorPathsExercised();
    }

    [Fact]
    public void Mutated_shard_index_of_a_real_checkpoint_loads_or_fails_typed()
    {
        var valid = Fixture("qwen3", SafetensorsIndex.FileName);
        string path = _dir.File(SafetensorsIndex.FileName);
        Prop.ForAll(FileMutation.Arbitrary(), mutation =>
        {
            File.WriteAllBytes(path, mutation.Apply(valid));
            AssertLoadsOrFailsTyped(() => SafetensorsIndex.Load(path), 4L << 20, $"index, {mutation}");
        }).Check(200);
        AssertErrorPathsExercised();
    }

}
