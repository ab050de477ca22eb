using TorchSharp;
using static TorchSharp.torch;

namespace Disagg.Cuda.Loading;

/// <summary>
/// The one place where a mapped safetensors tensor becomes a TorchSharp tensor. Everything else in this folder is plain
/// .NET and works without libtorch.
/// </summary>
public static class SafetensorsTensorFactory
{
    // Tensor.bytes exposes the storage as one span, so copy in pieces well below the 2 GiB span limit.
    private const long ChunkBytes = 256L * 1024 * 1024;

    /// <summary>The TorchSharp element type for <paramref name="type"/>, or null when TorchSharp has none.</summary>
    public static ScalarType? ToScalarType(TensorDataType type) => type switch
    {
        TensorDataType.Bool => ScalarType.Bool,
        TensorDataType.UInt8 => ScalarType.Byte,
        TensorDataType.Int8 => ScalarType.Int8,
        TensorDataType.Int16 => ScalarType.Int16,
        TensorDataType.Int32 => ScalarType.Int32,
        TensorDataType.Int64 => ScalarType.Int64,
        TensorDataType.Float16 => ScalarType.Float16,
        TensorDataType.BFloat16 => ScalarType.BFloat16,
        TensorDataType.Float32 => ScalarType.Float32,
        TensorDataType.Float64 => ScalarType.Float64,
        _ => null, // unsigned 16/32/64-bit and 8-bit floats
    };

    /// <summary>
    /// Copies <paramref name="source"/> into a new tensor on <paramref name="device"/> (CPU when null), converted to
    /// <paramref name="dataType"/> when given. The result owns its memory; the file may be closed afterwards.
    /// </summary>
    /// <exception cref="ModelLoadException">TorchSharp has no element type for the tensor's dtype.</exception>
    public static Tensor ToTensor(SafetensorsTensor source, Device? device = null, ScalarType? dataType = null)
    {
        var sourceType = ToScalarType(source.DataType)
            ?? throw new ModelLoadException(source.FilePath, $"tensor '{source.Name}' has dtype {source.DataType.ToSafetensorsName()}, which TorchSharp cannot represent.");

        var cpu = torch.empty(source.Shape.ToArray(), sourceType, torch.CPU);
        try
        {
            if (source.ByteLength > 0)
            {
                // The mapping is little-endian row-major, exactly libtorch's contiguous CPU layout.
                using var flat = cpu.view(-1);
                int elementSize = source.DataType.SizeInBytes();
                long chunkElements = ChunkBytes / elementSize;
                for (long start = 0; start < source.Info.ElementCount; start += chunkElements)
                {
                    long count = Math.Min(chunkElements, source.Info.ElementCount - start);
                    using var piece = flat.narrow(0, start, count);
                    source.GetSpan(start * elementSize, checked((int)(count * elementSize))).CopyTo(piece.bytes);
                }
            }

            var targetType = dataType ?? sourceType;
            var targetDevice = device ?? torch.CPU;
            if (targetType == sourceType && targetDevice.type == DeviceType.CPU) return cpu;
            var result = cpu.to(targetType, targetDevice);
            cpu.Dispose();
            return result;
        }
        catch
        {
            cpu.Dispose();
            throw;
        }
    }
}
