using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Disagg.Train.Model;

/// <summary>Grouped-query causal self-attention; its projections are named as HF Llama's (q_proj, k_proj, v_proj, o_proj).</summary>
internal sealed class Attention : nn.Module<Tensor, Tensor>
{
    private readonly Linear _q, _k, _v, _o;
    private readonly Rotary _rotary;
    private readonly int _heads, _kvHeads, _headDim;

    public Attention(ModelShape shape, Rotary rotary, Device device) : base(nameof(Attention))
    {
        (_heads, _kvHeads, _headDim, _rotary) = (shape.Heads, shape.KeyValueHeads, shape.HeadDim, rotary);
        _q = nn.Linear(shape.HiddenSize, _heads * _headDim, hasBias: false, device: device);
        _k = nn.Linear(shape.HiddenSize, _kvHeads * _headDim, hasBias: false, device: device);
        _v = nn.Linear(shape.HiddenSize, _kvHeads * _headDim, hasBias: false, device: device);
        _o = nn.Linear(_heads * _headDim, shape.HiddenSize, hasBias: false, device: device);
        register_module("q_proj", _q);
        register_module("k_proj", _k);
        register_module("v_proj", _v);
        register_module("o_proj", _o);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        long batch = x.shape[0], tokens = x.shape[1];
        var q = _rotary.Apply(_q.forward(x).view(batch, tokens, _heads, _headDim).transpose(1, 2));
        var k = _rotary.Apply(_k.forward(x).view(batch, tokens, _kvHeads, _headDim).transpose(1, 2));
        var v = _v.forward(x).view(batch, tokens, _kvHeads, _headDim).transpose(1, 2);
        int groups = _heads / _kvHeads;
        if (groups > 1)
        {
            k = k.repeat_interleave(groups, 1);
            v = v.repeat_interleave(groups, 1);
        }
        var attended = F.scaled_dot_product_attention(q, k, v, is_casual: true);
        return _o.forward(attended.transpose(1, 2).reshape(batch, tokens, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}
