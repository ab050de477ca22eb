using System.Buffers.Binary;
using System.IO.Compression;
using System.IO.Hashing;
using System.Text;

namespace Disagg.Benchmarks.Tests.Charts;

/// <summary>
/// Reads back what the encoder wrote, checking the container as a decoder would: signature, chunk framing, every chunk's
/// CRC-32 (computed with System.IO.Hashing, independently of the encoder), IHDR first and IEND last, then inflates IDAT.
/// </summary>
internal static class PngReader
{
    public sealed record Image(int Width, int Height, byte BitDepth, byte ColorType, byte Interlace, byte[] Scanlines, List<string> ChunkTypes);

    public static Image Read(byte[] png)
    {
        Assert.Equal(new byte[] { 137, 80, 78, 71, 13, 10, 26, 10 }, png[..8]);
        var types = new List<string>();
        var idat = new MemoryStream();
        byte[]? header = null;
        int at = 8;
        while (at < png.Length)
        {
            int length = BinaryPrimitives.ReadInt32BigEndian(png.AsSpan(at));
            string type = Encoding.ASCII.GetString(png, at + 4, 4);
            var typeAndData = png.AsSpan(at + 4, 4 + length);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(png.AsSpan(at + 8 + length));
            Assert.Equal(Crc32.HashToUInt32(typeAndData), crc);
            types.Add(type);
            var data = png.AsSpan(at + 8, length);
            if (type == "IHDR") header = data.ToArray();
            if (type == "IDAT") idat.Write(data);
            at += 12 + length;
        }
        Assert.Equal(png.Length, at);
        Assert.Equal("IHDR", types[0]);
        Assert.Equal("IEND", types[^1]);
        Assert.NotNull(header);
        Assert.Equal(13, header.Length);

        idat.Position = 0;
        using var zlib = new ZLibStream(idat, CompressionMode.Decompress);
        var raw = new MemoryStream();
        zlib.CopyTo(raw);
        return new Image(BinaryPrimitives.ReadInt32BigEndian(header), BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(4)),
            header[8], header[9], header[12], raw.ToArray(), types);
    }
}
