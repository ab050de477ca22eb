using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Train.Model;

/// <summary>Llama's RMSNorm: x / sqrt(mean(x²) + eps) * weight, statistics in float32.</summary>
internal sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly TorchSharp.Modules.Parameter _weight;
    private readonly double _eps;

    public RmsNorm(int size, double eps, Device device) : base(nameof(RmsNorm))
    {
        _eps = eps;
        _weight = new TorchSharp.Modules.Parameter(torch.ones(size, device: device));
        register_parameter("weight", _weight);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var x32 = x.to(ScalarType.Float32);
        var normed = x32 * (x32.pow(2).mean([-1], keepdim: true) + _eps).rsqrt();
        return (_weight * normed.to(x.dtype)).MoveToOuterDisposeScope();
    }
}
