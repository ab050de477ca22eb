using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Train.Training;

/// <summary>Training batches: windows of <c>context + 1</c> tokens at seeded random offsets of the packed token stream.</summary>
internal sealed class TokenWindows(int[] stream, int context, int seed)
{
    private readonly Random _random = new(seed);

    /// <summary>Inputs [batch, context] and next-token targets [batch, context], on <paramref name="device"/>.</summary>
    public (Tensor Inputs, Tensor Targets) Next(int batch, Device device)
    {
        if (stream.Length < context + 1) throw new InvalidOperationException($"The token stream ({stream.Length}) is shorter than one window ({context + 1}).");
        var inputs = new long[batch * context];
        var targets = new long[batch * context];
        for (int b = 0; b < batch; b++)
        {
            int start = _random.Next(stream.Length - context);
            for (int t = 0; t < context; t++)
            {
                inputs[b * context + t] = stream[start + t];
                targets[b * context + t] = stream[start + t + 1];
            }
        }
        return (torch.tensor(inputs, [batch, context]).to(device), torch.tensor(targets, [batch, context]).to(device));
    }
}
