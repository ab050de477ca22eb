using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace Disagg.Train.Model;

/// <summary>
/// A plain Llama for training (no KV cache), its parameters named exactly as HF's <c>LlamaForCausalLM</c> names them
/// (<c>model.embed_tokens.weight</c>, <c>model.layers.N.self_attn.q_proj.weight</c>, ..., <c>model.norm.weight</c>), so
/// that its state saves as a checkpoint both HF and Disagg's loader read. The output head is tied to the embedding.
/// Forward maps token ids [batch, tokens] to float32 logits [batch, tokens, vocab]. Every parameter is created on the
/// device (modules hold their parameters in fields, which moving a module with <c>to()</c> would leave behind).
/// </summary>
internal sealed class TrainingLlama : nn.Module<Tensor, Tensor>
{
    private readonly Body _body;

    public TrainingLlama(ModelShape shape, Device device) : base(nameof(TrainingLlama))
    {
        Shape = shape;
        _body = new Body(shape, device);
        register_module("model", _body);
        Initialize(std: 0.02);
    }

    public ModelShape Shape { get; }

    public override Tensor forward(Tensor ids)
    {
        using var scope = torch.NewDisposeScope();
        var hidden = _body.forward(ids);
        return F.linear(hidden, _body.EmbedTokens.weight!).to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Normal(0, 0.02) for the embedding and every projection, with the projections that write into the residual stream
    /// (o_proj, down_proj) scaled down by 1/sqrt(2 * layers) so the stream's variance does not grow with depth; norms stay 1.
    /// </summary>
    private void Initialize(double std)
    {
        using var noGrad = torch.no_grad();
        double residualScale = std / Math.Sqrt(2.0 * Shape.Layers);
        foreach (var (name, parameter) in named_parameters())
        {
            if (name.EndsWith("layernorm.weight", StringComparison.Ordinal) || name == "model.norm.weight") continue;
            bool residual = name.EndsWith("o_proj.weight", StringComparison.Ordinal) || name.EndsWith("down_proj.weight", StringComparison.Ordinal);
            nn.init.normal_(parameter, 0, residual ? residualScale : std);
        }
    }

    /// <summary>HF's <c>LlamaModel</c>: embedding, layers, final norm.</summary>
    private sealed class Body : nn.Module<Tensor, Tensor>
    {
        private readonly ModuleList<DecoderLayer> _layers;
        private readonly RmsNorm _norm;
        private readonly Rotary _rotary;

        public Body(ModelShape shape, Device device) : base(nameof(Body))
        {
            _rotary = new Rotary(shape.HeadDim, shape.MaxPositions, ModelShape.RopeTheta, device);
            EmbedTokens = nn.Embedding(shape.VocabSize, shape.HiddenSize, device: device);
            _layers = nn.ModuleList([.. Enumerable.Range(0, shape.Layers).Select(_ => new DecoderLayer(shape, _rotary, device))]);
            _norm = new RmsNorm(shape.HiddenSize, ModelShape.RmsNormEps, device);
            register_module("embed_tokens", EmbedTokens);
            register_module("layers", _layers);
            register_module("norm", _norm);
        }

        public Embedding EmbedTokens { get; }

        public override Tensor forward(Tensor ids)
        {
            using var scope = torch.NewDisposeScope();
            var x = EmbedTokens.forward(ids);
            foreach (var layer in _layers) x = layer.forward(x);
            return _norm.forward(x).MoveToOuterDisposeScope();
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _rotary.Dispose();
            base.Dispose(disposing);
        }
    }
}
