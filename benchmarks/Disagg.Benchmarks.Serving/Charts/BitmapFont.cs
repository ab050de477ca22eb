namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>
/// A 5 x 7 pixel font drawn for these charts: digits, capital letters (lower case is drawn as capitals) and common
/// punctuation. Characters it lacks are drawn as '?'. Each glyph advances 6 pixels (one blank column) at scale 1.
/// </summary>
public static class BitmapFont
{
    /// <summary>Glyph width in pixels at scale 1.</summary>
    public const int GlyphWidth = 5;

    /// <summary>Glyph height in pixels at scale 1.</summary>
    public const int GlyphHeight = 7;

    /// <summary>Horizontal advance per character at scale 1.</summary>
    public const int Advance = GlyphWidth + 1;

    // Seven rows of five pixels each, top to bottom, '#' lit.
    private static readonly Dictionary<char, string> s_rows = new()
    {
        [' '] = "..... ..... ..... ..... ..... ..... .....",
        ['0'] = ".###. #...# #..## #.#.# ##..# #...# .###.",
        ['1'] = "..#.. .##.. ..#.. ..#.. ..#.. ..#.. .###.",
        ['2'] = ".###. #...# ....# ...#. ..#.. .#... #####",
        ['3'] = "##### ...#. ..#.. ...#. ....# #...# .###.",
        ['4'] = "...#. ..##. .#.#. #..#. ##### ...#. ...#.",
        ['5'] = "##### #.... ####. ....# ....# #...# .###.",
        ['6'] = "..##. .#... #.... ####. #...# #...# .###.",
        ['7'] = "##### ....# ...#. ..#.. .#... .#... .#...",
        ['8'] = ".###. #...# #...# .###. #...# #...# .###.",
        ['9'] = ".###. #...# #...# .#### ....# ...#. .##..",
        ['A'] = ".###. #...# #...# ##### #...# #...# #...#",
        ['B'] = "####. #...# #...# ####. #...# #...# ####.",
        ['C'] = ".###. #...# #.... #.... #.... #...# .###.",
        ['D'] = "###.. #..#. #...# #...# #...# #..#. ###..",
        ['E'] = "##### #.... #.... ####. #.... #.... #####",
        ['F'] = "##### #.... #.... ####. #.... #.... #....",
        ['G'] = ".###. #...# #.... #.### #...# #...# .####",
        ['H'] = "#...# #...# #...# ##### #...# #...# #...#",
        ['I'] = ".###. ..#.. ..#.. ..#.. ..#.. ..#.. .###.",
        ['J'] = "..### ...#. ...#. ...#. ...#. #..#. .##..",
        ['K'] = "#...# #..#. #.#.. ##... #.#.. #..#. #...#",
        ['L'] = "#.... #.... #.... #.... #.... #.... #####",
        ['M'] = "#...# ##.## #.#.# #.#.# #...# #...# #...#",
        ['N'] = "#...# #...# ##..# #.#.# #..## #...# #...#",
        ['O'] = ".###. #...# #...# #...# #...# #...# .###.",
        ['P'] = "####. #...# #...# ####. #.... #.... #....",
        ['Q'] = ".###. #...# #...# #...# #.#.# #..#. .##.#",
        ['R'] = "####. #...# #...# ####. #.#.. #..#. #...#",
        ['S'] = ".#### #.... #.... .###. ....# ....# ####.",
        ['T'] = "##### ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
        ['U'] = "#...# #...# #...# #...# #...# #...# .###.",
        ['V'] = "#...# #...# #...# #...# #...# .#.#. ..#..",
        ['W'] = "#...# #...# #...# #.#.# #.#.# #.#.# .#.#.",
        ['X'] = "#...# #...# .#.#. ..#.. .#.#. #...# #...#",
        ['Y'] = "#...# #...# .#.#. ..#.. ..#.. ..#.. ..#..",
        ['Z'] = "##### ....# ...#. ..#.. .#... #.... #####",
        ['.'] = "..... ..... ..... ..... ..... .##.. .##..",
        [','] = "..... ..... ..... ..... .##.. ..#.. .#...",
        [':'] = "..... .##.. .##.. ..... .##.. .##.. .....",
        [';'] = "..... .##.. .##.. ..... .##.. ..#.. .#...",
        ['/'] = "..... ....# ...#. ..#.. .#... #.... .....",
        ['('] = "...#. ..#.. .#... .#... .#... ..#.. ...#.",
        [')'] = ".#... ..#.. ...#. ...#. ...#. ..#.. .#...",
        ['-'] = "..... ..... ..... ##### ..... ..... .....",
        ['+'] = "..... ..#.. ..#.. ##### ..#.. ..#.. .....",
        ['%'] = "##... ##..# ...#. ..#.. .#... #..## ...##",
        ['_'] = "..... ..... ..... ..... ..... ..... #####",
        ['='] = "..... ..... ##### ..... ##### ..... .....",
        ['<'] = "...#. ..#.. .#... #.... .#... ..#.. ...#.",
        ['>'] = ".#... ..#.. ...#. ....# ...#. ..#.. .#...",
        ['\''] = "..#.. ..#.. .#... ..... ..... ..... .....",
        ['!'] = "..#.. ..#.. ..#.. ..#.. ..#.. ..... ..#..",
        ['?'] = ".###. #...# ....# ...#. ..#.. ..... ..#..",
        ['*'] = "..... ..#.. #.#.# .###. #.#.# ..#.. .....",
        ['['] = ".###. .#... .#... .#... .#... .#... .###.",
        [']'] = ".###. ...#. ...#. ...#. ...#. ...#. .###.",
        ['|'] = "..#.. ..#.. ..#.. ..#.. ..#.. ..#.. ..#..",
        ['#'] = ".#.#. .#.#. ##### .#.#. ##### .#.#. .#.#.",
    };

    private static readonly Dictionary<char, bool[,]> s_glyphs = s_rows.ToDictionary(p => p.Key, p => Parse(p.Key, p.Value));

    /// <summary>The characters the font draws (lower-case letters are drawn as these capitals).</summary>
    public static IReadOnlyCollection<char> Characters => s_glyphs.Keys;

    /// <summary>The glyph drawn for <paramref name="c"/>: [row, column], true where lit.</summary>
    public static bool[,] Glyph(char c) =>
        s_glyphs.TryGetValue(char.ToUpperInvariant(c), out var glyph) ? glyph : s_glyphs['?'];

    /// <summary>Width in pixels of <paramref name="text"/> at <paramref name="scale"/> (no trailing blank column).</summary>
    public static int MeasureWidth(string text, int scale = 1) =>
        string.IsNullOrEmpty(text) ? 0 : (text.Length * Advance - 1) * scale;

    /// <summary>Draws <paramref name="text"/> with its top-left corner at (x, y); pixels off the canvas are skipped.</summary>
    public static void Draw(Canvas canvas, int x, int y, string text, Rgb color, int scale = 1)
    {
        ArgumentNullException.ThrowIfNull(canvas);
        ArgumentNullException.ThrowIfNull(text);
        foreach (char c in text)
        {
            var glyph = Glyph(c);
            for (int row = 0; row < GlyphHeight; row++)
                for (int col = 0; col < GlyphWidth; col++)
                    if (glyph[row, col]) canvas.FillRect(x + col * scale, y + row * scale, scale, scale, color);
            x += Advance * scale;
        }
    }

    private static bool[,] Parse(char c, string rows)
    {
        string[] lines = rows.Split(' ');
        if (lines.Length != GlyphHeight || lines.Any(l => l.Length != GlyphWidth))
            throw new InvalidOperationException($"Glyph '{c}' is not {GlyphWidth} x {GlyphHeight}.");
        var glyph = new bool[GlyphHeight, GlyphWidth];
        for (int row = 0; row < GlyphHeight; row++)
            for (int col = 0; col < GlyphWidth; col++)
                glyph[row, col] = lines[row][col] == '#';
        return glyph;
    }
}
