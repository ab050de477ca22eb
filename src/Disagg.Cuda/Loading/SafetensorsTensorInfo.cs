using System.Collections.Immutable;

namespace Disagg.Cuda.Loading;

/// <summary>One tensor's entry in a safetensors header: name, element type, shape and where its bytes lie.</summary>
public sealed class SafetensorsTensorInfo
{
    internal SafetensorsTensorInfo(string name, TensorDataType dataType, ImmutableArray<long> shape, long elementCount, long dataOffset, long byteLength)
    {
        Name = name;
        DataType = dataType;
        Shape = shape;
        ElementCount = elementCount;
        DataOffset = dataOffset;
        ByteLength = byteLength;
    }

    /// <summary>The tensor's name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public TensorDataType DataType { get; }

    /// <summary>Dimensions, outermost first (row-major). Empty for a scalar.</summary>
    public ImmutableArray<long> Shape { get; }

    /// <summary>Product of the dimensions (1 for a scalar).</summary>
    public long ElementCount { get; }

    /// <summary>Offset of the first byte, relative to the start of the file's data section.</summary>
    public long DataOffset { get; }

    /// <summary>Bytes of data: <see cref="ElementCount"/> times the element size.</summary>
    public long ByteLength { get; }

    /// <summary>The shape as text, e.g. <c>[4096, 14336]</c>.</summary>
    public string ShapeText => FormatShape(Shape.AsSpan());

    /// <inheritdoc />
    public override string ToString() => $"{Name} {DataType.ToSafetensorsName()} {ShapeText}";

    internal static string FormatShape(ReadOnlySpan<long> shape) => "[" + string.Join(", ", shape.ToArray()) + "]";
}
