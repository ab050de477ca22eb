using Disagg.Benchmarks.Serving.Charts;
using FsCheck.Xunit;

namespace Disagg.Benchmarks.Tests.Charts;

public class CanvasTests
{
    private static readonly Rgb Red = new(255, 0, 0);

    private static int Count(Canvas c, Rgb color)
    {
        int n = 0;
        for (int y = 0; y < c.Height; y++)
            for (int x = 0; x < c.Width; x++)
                if (c.GetPixel(x, y) == color) n++;
        return n;
    }

    [Fact]
    public void Every_glyph_is_five_by_seven_distinct_and_only_space_is_blank()
    {
        var glyphs = BitmapFont.Characters.ToDictionary(c => c, c => BitmapFont.Glyph(c));
        Assert.All(glyphs.Values, g => Assert.Equal((7, 5), (g.GetLength(0), g.GetLength(1))));
        static string Key(bool[,] g) => string.Concat(g.Cast<bool>().Select(b => b ? '#' : '.'));
        Assert.Equal(glyphs.Count, glyphs.Values.Select(Key).Distinct().Count()); // no two characters drawn alike
        Assert.Equal([' '], glyphs.Where(p => !p.Value.Cast<bool>().Any(b => b)).Select(p => p.Key));
        Assert.True(glyphs.Keys.Count(char.IsAsciiLetterUpper) == 26 && glyphs.Keys.Count(char.IsAsciiDigit) == 10);
        Assert.Same(BitmapFont.Glyph('A'), BitmapFont.Glyph('a'));
        Assert.Same(BitmapFont.Glyph('?'), BitmapFont.Glyph('~'));
    }

    [Property(MaxTest = 50)]
    public void Text_lights_a_scale_by_scale_block_per_glyph_pixel(byte charSeed, byte scaleSeed)
    {
        char c = BitmapFont.Characters.ElementAt(charSeed % BitmapFont.Characters.Count);
        int scale = 1 + scaleSeed % 4;
        var canvas = new Canvas(40, 40, Rgb.White);
        canvas.DrawText(3, 2, c.ToString(), Red, scale);
        var glyph = BitmapFont.Glyph(c);
        for (int y = 0; y < 40; y++)
            for (int x = 0; x < 40; x++)
            {
                int col = (x - 3) / scale, row = (y - 2) / scale;
                bool lit = x >= 3 && y >= 2 && col < 5 && row < 7 && glyph[row, col];
                Assert.Equal(lit ? Red : Rgb.White, canvas.GetPixel(x, y));
            }
        Assert.Equal((3 * 6 - 1) * scale, BitmapFont.MeasureWidth(new string(c, 3), scale));
    }

    [Property(MaxTest = 100)]
    public void Lines_join_their_end_points_with_one_pixel_per_step(byte x0, byte y0, byte x1, byte y1)
    {
        var canvas = new Canvas(256, 256, Rgb.White);
        canvas.DrawLine(x0, y0, x1, y1, Red);
        Assert.Equal(Red, canvas.GetPixel(x0, y0));
        Assert.Equal(Red, canvas.GetPixel(x1, y1));
        Assert.Equal(Math.Max(Math.Abs(x1 - x0), Math.Abs(y1 - y0)) + 1, Count(canvas, Red));
    }

    [Fact]
    public void Drawing_off_the_canvas_is_clipped()
    {
        var canvas = new Canvas(10, 10, Rgb.White);
        canvas.FillRect(-5, 8, 8, 10, Red); // covers x 0..2, y 8..9
        Assert.Equal(6, Count(canvas, Red));
        canvas.DrawText(-100, -100, "CLIPPED", Red, 3);
        canvas.DrawLine(-20, 5, 30, 5, Red);
        Assert.Equal(6 + 10, Count(canvas, Red)); // the text is wholly off the canvas; the line adds row 5
    }
}
