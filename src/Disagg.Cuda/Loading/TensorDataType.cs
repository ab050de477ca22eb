namespace Disagg.Cuda.Loading;

/// <summary>Element type of a stored tensor, as named by the safetensors format.</summary>
public enum TensorDataType
{
    /// <summary>Boolean, one byte per element.</summary>
    Bool,
    /// <summary>Unsigned 8-bit integer.</summary>
    UInt8,
    /// <summary>Signed 8-bit integer.</summary>
    Int8,
    /// <summary>Signed 16-bit integer.</summary>
    Int16,
    /// <summary>Unsigned 16-bit integer.</summary>
    UInt16,
    /// <summary>Signed 32-bit integer.</summary>
    Int32,
    /// <summary>Unsigned 32-bit integer.</summary>
    UInt32,
    /// <summary>Signed 64-bit integer.</summary>
    Int64,
    /// <summary>Unsigned 64-bit integer.</summary>
    UInt64,
    /// <summary>IEEE 754 half precision.</summary>
    Float16,
    /// <summary>bfloat16 (the upper half of an IEEE single).</summary>
    BFloat16,
    /// <summary>IEEE 754 single precision.</summary>
    Float32,
    /// <summary>IEEE 754 double precision.</summary>
    Float64,
    /// <summary>8-bit float, 4 exponent and 3 mantissa bits (finite-only variant, "e4m3fn").</summary>
    Float8E4M3,
    /// <summary>8-bit float, 5 exponent and 2 mantissa bits.</summary>
    Float8E5M2,
}

/// <summary>Helpers for <see cref="TensorDataType"/>.</summary>
public static class TensorDataTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int SizeInBytes(this TensorDataType type) => type switch
    {
        TensorDataType.Bool or TensorDataType.UInt8 or TensorDataType.Int8
            or TensorDataType.Float8E4M3 or TensorDataType.Float8E5M2 => 1,
        TensorDataType.Int16 or TensorDataType.UInt16 or TensorDataType.Float16 or TensorDataType.BFloat16 => 2,
        TensorDataType.Int32 or TensorDataType.UInt32 or TensorDataType.Float32 => 4,
        TensorDataType.Int64 or TensorDataType.UInt64 or TensorDataType.Float64 => 8,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown tensor data type."),
    };

    /// <summary>The name the safetensors header uses for this type ("BF16", "F32", ...).</summary>
    public static string ToSafetensorsName(this TensorDataType type) => type switch
    {
        TensorDataType.Bool => "BOOL",
        TensorDataType.UInt8 => "U8",
        TensorDataType.Int8 => "I8",
        TensorDataType.Int16 => "I16",
        TensorDataType.UInt16 => "U16",
        TensorDataType.Int32 => "I32",
        TensorDataType.UInt32 => "U32",
        TensorDataType.Int64 => "I64",
        TensorDataType.UInt64 => "U64",
        TensorDataType.Float16 => "F16",
        TensorDataType.BFloat16 => "BF16",
        TensorDataType.Float32 => "F32",
        TensorDataType.Float64 => "F64",
        TensorDataType.Float8E4M3 => "F8_E4M3",
        TensorDataType.Float8E5M2 => "F8_E5M2",
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown tensor data type."),
    };

    /// <summary>Parses a safetensors dtype name (case-sensitive, as the format specifies).</summary>
    public static bool TryParseSafetensorsName(ReadOnlySpan<char> name, out TensorDataType type)
    {
        switch (name)
        {
            case "BOOL": type = TensorDataType.Bool; return true;
            case "U8": type = TensorDataType.UInt8; return true;
            case "I8": type = TensorDataType.Int8; return true;
            case "I16": type = TensorDataType.Int16; return true;
            case "U16": type = TensorDataType.UInt16; return true;
            case "I32": type = TensorDataType.Int32; return true;
            case "U32": type = TensorDataType.UInt32; return true;
            case "I64": type = TensorDataType.Int64; return true;
            case "U64": type = TensorDataType.UInt64; return true;
            case "F16": type = TensorDataType.Float16; return true;
            case "BF16": type = TensorDataType.BFloat16; return true;
            case "F32": type = TensorDataType.Float32; return true;
            case "F64": type = TensorDataType.Float64; return true;
            case "F8_E4M3": type = TensorDataType.Float8E4M3; return true;
            case "F8_E5M2": type = TensorDataType.Float8E5M2; return true;
            default: type = default; return false;
        }
    }

    // For error messages.
    internal const string SupportedSafetensorsNames =
        "BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2";
}
