using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Disagg.Train.Model;

/// <summary>SwiGLU feed-forward: down(silu(gate(x)) * up(x)).</summary>
internal sealed class Mlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear _gate, _up, _down;

    public Mlp(ModelShape shape, Device device) : base(nameof(Mlp))
    {
        _gate = nn.Linear(shape.HiddenSize, shape.IntermediateSize, hasBias: false, device: device);
        _up = nn.Linear(shape.HiddenSize, shape.IntermediateSize, hasBias: false, device: device);
        _down = nn.Linear(shape.IntermediateSize, shape.HiddenSize, hasBias: false, device: device);
        register_module("gate_proj", _gate);
        register_module("up_proj", _up);
        register_module("down_proj", _down);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        return _down.forward(F.silu(_gate.forward(x)) * _up.forward(x)).MoveToOuterDisposeScope();
    }
}
