using Disagg.Cuda.Loading;
using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Model;

/// <summary>
/// Rotary position embedding in the "rotate half" form Llama, Qwen and Mistral use, with the Llama 3 and linear frequency
/// scalings. Cos/sin tables for every position are computed once in float32 on the model's device.
/// </summary>
internal sealed class RotaryEmbedding : IDisposable
{
    private readonly Tensor _cos; // [maxPositions, headDim], float32
    private readonly Tensor _sin;

    public RotaryEmbedding(RopeParameters rope, int headDim, int maxPositions, Device device)
    {
        var inverseFrequencies = InverseFrequencies(rope, headDim);
        using var scope = torch.NewDisposeScope();
        // float32 throughout, as the reference implementation computes it, so that long positions round the same way.
        var positions = torch.arange(maxPositions, ScalarType.Float32);
        var frequencies = torch.outer(positions, torch.tensor(inverseFrequencies).to(ScalarType.Float32)); // [maxPositions, headDim/2]
        var angles = torch.cat([frequencies, frequencies], 1);
        _cos = angles.cos().to(ScalarType.Float32, device).MoveToOuterDisposeScope();
        _sin = angles.sin().to(ScalarType.Float32, device).MoveToOuterDisposeScope();
    }

    /// <summary>float32 [maxPositions, headDim]: cos of every position's angles (the fused kernels read it directly).</summary>
    public Tensor Cos => _cos;

    /// <summary>float32 [maxPositions, headDim]: sin of every position's angles.</summary>
    public Tensor Sin => _sin;

    /// <summary>The per-pair inverse frequencies, after scaling: what the model's config asks for.</summary>
    public static double[] InverseFrequencies(RopeParameters rope, int headDim)
    {
        int pairs = headDim / 2;
        var inv = new double[pairs];
        for (int i = 0; i < pairs; i++) inv[i] = 1.0 / Math.Pow(rope.Theta, 2.0 * i / headDim);
        switch (rope.ScalingType)
        {
            case RopeScalingType.Linear:
                for (int i = 0; i < pairs; i++) inv[i] /= rope.Factor;
                break;
            case RopeScalingType.Llama3:
                // Long wavelengths (low frequencies) are stretched by the factor, short ones kept, and the band between
                // interpolated smoothly, so that the original context keeps its high-frequency detail.
                double original = rope.OriginalMaxPositionEmbeddings!.Value;
                double low = rope.LowFreqFactor!.Value, high = rope.HighFreqFactor!.Value;
                double lowFreqWavelength = original / low, highFreqWavelength = original / high;
                for (int i = 0; i < pairs; i++)
                {
                    double wavelength = 2 * Math.PI / inv[i];
                    if (wavelength > lowFreqWavelength)
                    {
                        inv[i] /= rope.Factor;
                    }
                    else if (wavelength >= highFreqWavelength)
                    {
                        double smooth = (original / wavelength - low) / (high - low);
                        inv[i] = (1 - smooth) * inv[i] / rope.Factor + smooth * inv[i];
                    }
                }
                break;
        }
        return inv;
    }

    /// <summary>Rotates <paramref name="x"/> ([tokens, heads, headDim]) by the angles of <paramref name="positions"/> ([tokens], int64).</summary>
    public Tensor Apply(Tensor x, Tensor positions)
    {
        using var scope = torch.NewDisposeScope();
        var cos = _cos.index_select(0, positions).unsqueeze(1).to(x.dtype); // [tokens, 1, headDim]
        var sin = _sin.index_select(0, positions).unsqueeze(1).to(x.dtype);
        var halves = x.chunk(2, -1);
        var rotated = torch.cat([halves[1].neg(), halves[0]], -1);
        return (x * cos + rotated * sin).MoveToOuterDisposeScope();
    }

    public void Dispose()
    {
        _cos.Dispose();
        _sin.Dispose();
    }
}
