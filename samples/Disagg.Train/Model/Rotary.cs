using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Train.Model;

/// <summary>Rotary position embedding in Llama's "rotate half" form, with float32 tables for every position.</summary>
internal sealed class Rotary : IDisposable
{
    private readonly Tensor _cos, _sin; // [positions, headDim]

    public Rotary(int headDim, int positions, double theta, Device device)
    {
        using var scope = torch.NewDisposeScope();
        var exponents = torch.arange(0, headDim, 2, ScalarType.Int64).to(ScalarType.Float32) / headDim;
        var inverse = 1.0 / torch.full(exponents.shape, theta, ScalarType.Float32).pow(exponents); // float32, as HF computes it
        var angles = torch.outer(torch.arange(positions, ScalarType.Float32), inverse);
        angles = torch.cat([angles, angles], 1);
        _cos = angles.cos().to(device).DetachFromDisposeScope();
        _sin = angles.sin().to(device).DetachFromDisposeScope();
    }

    /// <summary>Rotates <paramref name="x"/> ([batch, heads, tokens, headDim]) by the angles of positions 0..tokens-1.</summary>
    public Tensor Apply(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        long tokens = x.shape[2];
        var cos = _cos.narrow(0, 0, tokens).to(x.dtype);
        var sin = _sin.narrow(0, 0, tokens).to(x.dtype);
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
