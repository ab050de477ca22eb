using Disagg.Benchmarks.Serving.Charts;
using FsCheck.Xunit;

namespace Disagg.Benchmarks.Tests.Charts;

public class PngEncoderTests
{
    [Property(MaxTest = 100)]
    public void Decodes_back_to_the_same_pixels(byte widthSeed, byte heightSeed, int pixelSeed)
    {
        int width = 1 + widthSeed % 48, height = 1 + heightSeed % 48;
        var rgb = new byte[3 * width * height];
        new Random(pixelSeed).NextBytes(rgb);

        var image = PngReader.Read(PngEncoder.Encode(width, height, rgb));

        Assert.Equal((width, height), (image.Width, image.Height));
        Assert.Equal(8, image.BitDepth);
        Assert.Equal(2, image.ColorType); // truecolour
        Assert.Equal(0, image.Interlace);
        Assert.Equal(height * (1 + 3 * width), image.Scanlines.Length);
        for (int y = 0; y < height; y++)
        {
            int row = y * (1 + 3 * width);
            Assert.Equal(0, image.Scanlines[row]); // filter type None
            Assert.Equal(rgb.AsSpan(y * 3 * width, 3 * width).ToArray(), image.Scanlines.AsSpan(row + 1, 3 * width).ToArray());
        }
    }

    [Fact]
    public void Wrong_sizes_are_refused()
    {
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(0, 1, []));
        Assert.Throws<ArgumentException>(() => PngEncoder.Encode(2, 2, new byte[11]));
    }
}
