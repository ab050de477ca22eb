namespace Disagg.Benchmarks.Serving.Charts;

/// <summary>A pixel rectangle: left, top, width, height.</summary>
public readonly record struct Rect(int X, int Y, int Width, int Height)
{
    /// <summary>One past the right edge.</summary>
    public int Right => X + Width;

    /// <summary>One past the bottom edge.</summary>
    public int Bottom => Y + Height;

    /// <summary>Whether (x, y) lies inside.</summary>
    public bool Contains(int x, int y) => x >= X && x < Right && y >= Y && y < Bottom;
}
