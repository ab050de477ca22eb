namespace Disagg.Kv;

/// <summary>Element type of the KV cache.</summary>
public enum KvDataType
{
    /// <summary>32-bit IEEE float.</summary>
    Float32,
    /// <summary>16-bit IEEE float.</summary>
    Float16,
    /// <summary>bfloat16.</summary>
    BFloat16,
}

/// <summary>Helpers for <see cref="KvDataType"/>.</summary>
public static class KvDataTypeExtensions
{
    /// <summary>Bytes per element.</summary>
    public static int SizeInBytes(this KvDataType type) => type switch
    {
        KvDataType.Float32 => 4,
        KvDataType.Float16 or KvDataType.BFloat16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown KV data type."),
    };
}
