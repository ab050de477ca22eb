using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Train.Model;

/// <summary>One pre-norm Llama block: x + attention(norm(x)), then h + mlp(norm(h)).</summary>
internal sealed class DecoderLayer : nn.Module<Tensor, Tensor>
{
    private readonly RmsNorm _inputNorm, _postAttentionNorm;
    private readonly Attention _selfAttention;
    private readonly Mlp _mlp;

    public DecoderLayer(ModelShape shape, Rotary rotary, Device device) : base(nameof(DecoderLayer))
    {
        _inputNorm = new RmsNorm(shape.HiddenSize, ModelShape.RmsNormEps, device);
        _selfAttention = new Attention(shape, rotary, device);
        _postAttentionNorm = new RmsNorm(shape.HiddenSize, ModelShape.RmsNormEps, device);
        _mlp = new Mlp(shape, device);
        register_module("input_layernorm", _inputNorm);
        register_module("self_attn", _selfAttention);
        register_module("post_attention_layernorm", _postAttentionNorm);
        register_module("mlp", _mlp);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = torch.NewDisposeScope();
        var h = x + _selfAttention.forward(_inputNorm.forward(x));
        return (h + _mlp.forward(_postAttentionNorm.forward(h))).MoveToOuterDisposeScope();
    }
}
