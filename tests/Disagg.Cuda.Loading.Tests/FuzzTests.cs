using System.Buffers.Binary;
using System.Text;

namespace Disagg.Cuda.Loading.Tests;

/// <summary>
/// Random corruptions of valid files must end in a <see cref="ModelLoadException"/> or a file that reads cleanly:
/// never another exception type, a crash, or a large allocation. Seeded, so failures reproduce.
/// </summary>
[Trait("Category", "Reliability")]
public sealed class FuzzTests : IDisposable
{
    private const int Iterations = 400;
    private const long AllocationBudget = 2_000_000; // per attempt; the files are a few hundred bytes

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static byte[] ValidSafetensors()
    {
        using var dir = new TempDirectory();
        string path = dir.File("valid.safetensors");
        SafetensorsWriter.WriteFile(path,
        [
            (new SafetensorsTensorDescriptor("model.embed_tokens.weight", TensorDataType.BFloat16, [4, 3]), RawSafetensors.Pattern(24, 1)),
            (new SafetensorsTensorDescriptor("model.norm.weight", TensorDataType.Float32, [3]), RawSafetensors.Floats(1f, 2f, 3f)),
            (new SafetensorsTensorDescriptor("empty", TensorDataType.Float16, [0]), Array.Empty<byte>()),
            (new SafetensorsTensorDescriptor("ids", TensorDataType.Int64, [2]), RawSafetensors.Pattern(16, 2)),
        ], new Dictionary<string, string> { ["format"] = "pt" });
        return File.ReadAllBytes(path);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void CorruptedSafetensorsFailOnlyWithModelLoadException(int seed)
    {
        byte[] valid = ValidSafetensors();
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        var random = new Random(seed);
        string path = _dir.File("fuzz.safetensors");
        int rejected = 0;
        for (int i = 0; i < Iterations; i++)
        {
            byte[] mutated = Mutate(valid, headerEnd, random, out string mutation);
            File.WriteAllBytes(path, mutated);
            long before = GC.GetAllocatedBytesForCurrentThread();
            try
            {
                using var file = SafetensorsFile.Open(path);
                long checksum = 0;
                foreach (var info in file.Tensors)
                {
                    foreach (byte b in file.GetTensor(info.Name).Span) checksum += b;
                }
                GC.KeepAlive(checksum);
            }
            catch (ModelLoadException ex)
            {
                Assert.Equal(path, ex.FilePath);
                rejected++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"seed {seed}, iteration {i}, {mutation}: {ex.GetType().Name}: {ex.Message}");
            }
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.True(allocated < AllocationBudget, $"seed {seed}, iteration {i}, {mutation}: allocated {allocated} bytes");
        }
        // The mutations must actually exercise the error paths.
        Assert.InRange(rejected, Iterations / 4, Iterations);
    }

    [Theory]
    [InlineData(ConfigSamples.Llama31Classic, 11)]
    [InlineData(ConfigSamples.Llama31Transformers5, 12)]
    [InlineData(ConfigSamples.Qwen3Small, 13)]
    public void CorruptedConfigsFailOnlyWithModelLoadException(string json, int seed)
    {
        byte[] valid = Encoding.UTF8.GetBytes(json);
        var random = new Random(seed);
        string path = _dir.File("config.json");
        for (int i = 0; i < Iterations; i++)
        {
            byte[] mutated = Mutate(valid, valid.Length, random, out string mutation, lengthPrefix: false);
            File.WriteAllBytes(path, mutated);
            try
            {
                ModelConfig.Load(path);
            }
            catch (ModelLoadException ex)
            {
                Assert.Equal(path, ex.FilePath);
            }
            catch (Exception ex)
            {
                Assert.Fail($"seed {seed}, iteration {i}, {mutation}: {ex.GetType().Name}: {ex.Message}\n{Encoding.UTF8.GetString(mutated)}");
            }
        }
    }

    [Fact]
    public void CorruptedIndexFailsOnlyWithModelLoadException()
    {
        byte[] valid = Encoding.UTF8.GetBytes("""{"metadata":{"total_size":64},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}""");
        var random = new Random(21);
        string path = _dir.File(SafetensorsIndex.FileName);
        for (int i = 0; i < Iterations; i++)
        {
            byte[] mutated = Mutate(valid, valid.Length, random, out string mutation, lengthPrefix: false);
            File.WriteAllBytes(path, mutated);
            try
            {
                SafetensorsIndex.Load(path);
            }
            catch (ModelLoadException)
            {
            }
            catch (Exception ex)
            {
                Assert.Fail($"iteration {i}, {mutation}: {ex.GetType().Name}: {ex.Message}");
            }
        }
    }

    private static readonly byte[] s_jsonBytes = Encoding.ASCII.GetBytes("{}[]\",:0123456789-+eE. \\ntfu");

    /// <summary>One random corruption, concentrated on the structured part (the header) where parsing happens.</summary>
    private static byte[] Mutate(byte[] valid, int structuredEnd, Random random, out string mutation, bool lengthPrefix = true)
    {
        byte[] bytes = (byte[])valid.Clone();
        switch (random.Next(lengthPrefix ? 6 : 5))
        {
            case 0:
                int flips = random.Next(1, 5);
                for (int f = 0; f < flips; f++) bytes[random.Next(structuredEnd)] ^= (byte)(1 << random.Next(8));
                mutation = $"{flips} bit flips";
                return bytes;
            case 1:
                int at = random.Next(structuredEnd);
                bytes[at] = s_jsonBytes[random.Next(s_jsonBytes.Length)];
                mutation = $"byte {at} set to '{(char)bytes[at]}'";
                return bytes;
            case 2:
                int length = random.Next(bytes.Length);
                mutation = $"truncated to {length}";
                return bytes[..length];
            case 3:
                int cut = random.Next(structuredEnd), count = random.Next(1, 8);
                mutation = $"{count} bytes removed at {cut}";
                return [.. bytes[..cut], .. bytes[Math.Min(bytes.Length, cut + count)..]];
            case 4:
                int insertAt = random.Next(structuredEnd);
                byte[] inserted = [.. Enumerable.Range(0, random.Next(1, 6)).Select(_ => s_jsonBytes[random.Next(s_jsonBytes.Length)])];
                mutation = $"'{Encoding.ASCII.GetString(inserted)}' inserted at {insertAt}";
                return [.. bytes[..insertAt], .. inserted, .. bytes[insertAt..]];
            default:
                ulong claimed = random.Next(3) switch
                {
                    0 => (ulong)random.Next(bytes.Length + 16),
                    1 => (ulong)random.NextInt64(),
                    _ => ulong.MaxValue - (ulong)random.Next(16),
                };
                BinaryPrimitives.WriteUInt64LittleEndian(bytes, claimed);
                mutation = $"header length set to {claimed}";
                return bytes;
        }
    }
}
