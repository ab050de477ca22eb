using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>
/// Writes 8-bit RGB images as PNG: the signature, IHDR, one IDAT (zlib-compressed scanlines, each with filter type 0) and
/// IEND, every chunk with its CRC-32. Enough for charts; no dependency beyond the base library.
/// </summary>
public static class PngEncoder
{
    private static readonly byte[] s_signature = [137, 80, 78, 71, 13, 10, 26, 10];
    private static readonly uint[] s_crcTable = BuildCrcTable();

    /// <summary>Encodes a <paramref name="width"/> x <paramref name="height"/> image whose pixels are <paramref name="rgb"/> (3 bytes each, rows top to bottom).</summary>
    /// <exception cref="ArgumentException">The sizes are not positive or <paramref name="rgb"/> has the wrong length.</exception>
    public static byte[] Encode(int width, int height, ReadOnlySpan<byte> rgb)
    {
        if (width < 1 || height < 1) throw new ArgumentException($"Image size {width} x {height} is not positive.");
        long rowBytes = 3L * width;
        if (rgb.Length != rowBytes * height) throw new ArgumentException($"Expected {rowBytes * height} bytes of RGB pixels for {width} x {height}, got {rgb.Length}.", nameof(rgb));

        using var png = new MemoryStream();
        png.Write(s_signature);
        Span<byte> header = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header[4..], height);
        header[8] = 8;   // bit depth
        header[9] = 2;   // colour type: truecolour (RGB)
        header[10] = 0;  // compression: deflate
        header[11] = 0;  // filter method: adaptive (we use filter type 0, None, on every row)
        header[12] = 0;  // no interlace
        WriteChunk(png, "IHDR", header);

        using (var compressed = new MemoryStream())
        {
            using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
            {
                for (int y = 0; y < height; y++)
                {
                    zlib.WriteByte(0);
                    zlib.Write(rgb.Slice((int)(y * rowBytes), (int)rowBytes));
                }
            }
            WriteChunk(png, "IDAT", compressed.GetBuffer().AsSpan(0, (int)compressed.Length));
        }
        WriteChunk(png, "IEND", []);
        return png.ToArray();
    }

    /// <summary>The CRC-32 of PNG chunks (ISO 3309, reflected polynomial 0xEDB88320) over <paramref name="data"/>, continuing from <paramref name="crc"/>.</summary>
    internal static uint UpdateCrc(uint crc, ReadOnlySpan<byte> data)
    {
        foreach (byte b in data) crc = s_crcTable[(crc ^ b) & 0xFF] ^ (crc >> 8);
        return crc;
    }

    private static void WriteChunk(Stream png, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> word = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(word, data.Length);
        png.Write(word);
        Span<byte> typeBytes = stackalloc byte[4];
        Encoding.ASCII.GetBytes(type, typeBytes);
        png.Write(typeBytes);
        png.Write(data);
        uint crc = UpdateCrc(UpdateCrc(0xFFFFFFFF, typeBytes), data) ^ 0xFFFFFFFF; // the CRC covers the type and the data
        BinaryPrimitives.WriteUInt32BigEndian(word, crc);
        png.Write(word);
    }

    private static uint[] BuildCrcTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
