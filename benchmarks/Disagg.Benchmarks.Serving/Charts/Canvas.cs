namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>An RGB raster to draw charts on: filled rectangles, lines, text. Drawing outside the canvas is clipped.</summary>
public sealed class Canvas
{
    private readonly byte[] _rgb;

    /// <summary>Creates a <paramref name="width"/> x <paramref name="height"/> canvas filled with <paramref name="background"/>.</summary>
    public Canvas(int width, int height, Rgb background)
    {
        if (width < 1 || height < 1 || (long)width * height > 64L << 20)
            throw new ArgumentOutOfRangeException(nameof(width), $"Canvas size {width} x {height} must be positive and at most 64 Mpixels.");
        Width = width;
        Height = height;
        _rgb = new byte[3 * width * height];
        FillRect(0, 0, width, height, background);
    }

    /// <summary>Width in pixels.</summary>
    public int Width { get; }

    /// <summary>Height in pixels.</summary>
    public int Height { get; }

    /// <summary>The pixels, 3 bytes each (R, G, B), rows top to bottom.</summary>
    public ReadOnlySpan<byte> Pixels => _rgb;

    /// <summary>The colour at (x, y).</summary>
    public Rgb GetPixel(int x, int y)
    {
        if ((uint)x >= (uint)Width || (uint)y >= (uint)Height) throw new ArgumentOutOfRangeException(nameof(x), $"({x}, {y}) is off the canvas.");
        int i = 3 * (y * Width + x);
        return new Rgb(_rgb[i], _rgb[i + 1], _rgb[i + 2]);
    }

    /// <summary>Fills the rectangle at (x, y) of size w x h.</summary>
    public void FillRect(int x, int y, int w, int h, Rgb color)
    {
        int x0 = Math.Max(0, x), y0 = Math.Max(0, y), x1 = Math.Min(Width, x + w), y1 = Math.Min(Height, y + h);
        for (int row = y0; row < y1; row++)
            for (int col = x0; col < x1; col++)
            {
                int i = 3 * (row * Width + col);
                _rgb[i] = color.R;
                _rgb[i + 1] = color.G;
                _rgb[i + 2] = color.B;
            }
    }

    /// <summary>Draws a line from (x0, y0) to (x1, y1), <paramref name="thickness"/> pixels wide; with <paramref name="dash"/> &gt; 0, alternately drawn and skipped every <paramref name="dash"/> steps.</summary>
    public void DrawLine(int x0, int y0, int x1, int y1, Rgb color, int thickness = 1, int dash = 0)
    {
        // Bresenham: step along the longer axis, carrying the error of the shorter one.
        int dx = Math.Abs(x1 - x0), dy = -Math.Abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, error = dx + dy;
        int half = (thickness - 1) / 2;
        for (int step = 0; ; step++)
        {
            if (dash <= 0 || step / dash % 2 == 0) FillRect(x0 - half, y0 - half, thickness, thickness, color);
            if (x0 == x1 && y0 == y1) break;
            int e2 = 2 * error;
            if (e2 >= dy) { error += dy; x0 += sx; }
            if (e2 <= dx) { error += dx; y0 += sy; }
        }
    }

    /// <summary>Draws <paramref name="text"/> in <see cref="BitmapFont"/> with its top-left corner at (x, y).</summary>
    public void DrawText(int x, int y, string text, Rgb color, int scale = 1) => BitmapFont.Draw(this, x, y, text, color, scale);

    /// <summary>The canvas as a PNG file's bytes.</summary>
    public byte[] ToPng() => PngEncoder.Encode(Width, Height, _rgb);
}
