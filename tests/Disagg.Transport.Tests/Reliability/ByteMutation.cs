using System.Buffers.Binary;

namespace Disagg.Transport.Tests.Reliability;

/// <summary>
/// One corruption of a frame or a payload, as FsCheck generates and shrinks it: a flipped bit, a truncation, a 32-bit field
/// overwritten with an extreme value (counts and lengths), inserted or deleted bytes. Every field value means something.
/// </summary>
public sealed record ByteMutation(int Kind, int Position, int Value)
{
    private static readonly int[] s_extremes = [int.MaxValue, int.MinValue, -1, 0, 1, 0x4000_0000, 0x7FFF_FFF0, 65_536, 4 << 20];

    public byte[] Apply(byte[] valid)
    {
        int kind = (int)((uint)Kind % 5); // any generated values will do (FsCheck also builds these by reflection)
        if (valid.Length == 0) return kind == 4 ? BitConverter.GetBytes(Value) : valid;
        int at = (int)((uint)Position % (uint)valid.Length);
        var bytes = (byte[])valid.Clone();
        switch (kind)
        {
            case 0:
                bytes[at] ^= (byte)(1 << (Value & 7));
                return bytes;
            case 1:
                return bytes[..at];
            case 2:
                at = Math.Min(at, Math.Max(0, bytes.Length - 4)) & ~3; // fields are 4-byte aligned more often than not
                if (bytes.Length >= 4) BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(at), s_extremes[(Value & int.MaxValue) % s_extremes.Length]);
                return bytes;
            case 3:
                return [.. bytes[..at], .. bytes[Math.Min(bytes.Length, at + 1 + (Value & 15))..]];
            default:
                return [.. bytes[..at], .. BitConverter.GetBytes(Value), .. bytes[at..]];
        }
    }
}
