using System.Collections.Immutable;

namespace Disagg.Cuda.Loading;

/// <summary>A weight the model needs: its Hugging Face name and the shape the config implies.</summary>
/// <param name="Name">Checkpoint name, e.g. <c>model.layers.3.mlp.up_proj.weight</c>.</param>
/// <param name="Shape">Expected dimensions (PyTorch Linear layout: [out_features, in_features]).</param>
public sealed record ExpectedTensor(string Name, ImmutableArray<long> Shape)
{
    /// <summary>The shape as text, e.g. <c>[4096, 14336]</c>.</summary>
    public string ShapeText => SafetensorsTensorInfo.FormatShape(Shape.AsSpan());

    /// <inheritdoc />
    public override string ToString() => $"{Name} {ShapeText}";
}
