using Disagg.Cuda.Loading;
using Disagg.Train.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Train.Output;

/// <summary>
/// The trained weights as model.safetensors in bfloat16. <see cref="RoundToBFloat16"/> runs first, so the model the
/// trainer evaluates holds exactly the values the file stores: float32 inference of the file, anywhere, starts from
/// the same numbers.
/// </summary>
internal static class Checkpoint
{
    public const string FileName = "model.safetensors";

    /// <summary>Rounds every parameter to the nearest bfloat16 (kept in float32).</summary>
    public static void RoundToBFloat16(TrainingLlama model)
    {
        using var noGrad = torch.no_grad();
        foreach (var parameter in model.parameters())
        {
            using var rounded = parameter.to(ScalarType.BFloat16).to(ScalarType.Float32);
            parameter.copy_(rounded);
        }
    }

    /// <summary>The (HF-named) tensors the file will hold, in the model's order.</summary>
    public static IReadOnlyList<SafetensorsTensorDescriptor> Describe(TrainingLlama model) =>
        [.. model.named_parameters().Select(p => new SafetensorsTensorDescriptor(p.name, TensorDataType.BFloat16, p.parameter.shape))];

    /// <summary>Writes <paramref name="model"/>'s parameters in bfloat16; returns the file's size in bytes.</summary>
    public static long Write(TrainingLlama model, string directory)
    {
        string path = Path.Combine(directory, FileName);
        using (var writer = new SafetensorsWriter(path, Describe(model), new Dictionary<string, string> { ["format"] = "pt" }))
        {
            foreach (var (_, parameter) in model.named_parameters())
            {
                using var bits = parameter.detach().to(ScalarType.BFloat16).cpu().contiguous();
                writer.Write(bits.bytes);
            }
            writer.Complete();
        }
        return new FileInfo(path).Length;
    }
}
