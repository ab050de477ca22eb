namespace Disagg.Text;

/// <summary>
/// Finds stop strings in streamed text. Text that could still be the start of a stop string is held back, so a caller
/// never shows the user part of a stop string. Not thread-safe: one per sequence.
/// </summary>
public sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private string _pending = "";

    /// <summary>Creates a matcher for <paramref name="stopStrings"/> (each non-empty).</summary>
    public StopStringMatcher(IReadOnlyList<string> stopStrings)
    {
        ArgumentNullException.ThrowIfNull(stopStrings);
        foreach (var s in stopStrings)
            if (string.IsNullOrEmpty(s)) throw new ArgumentException("Stop strings must be non-empty.", nameof(stopStrings));
        _stops = [.. stopStrings];
    }

    /// <summary>
    /// Adds <paramref name="text"/> and returns what may be shown now. When a stop string completes, returns the text before
    /// it and sets <paramref name="stopped"/>; nothing after the stop string is ever returned.
    /// </summary>
    public string Push(string text, out bool stopped)
    {
        stopped = false;
        if (_stops.Length == 0) return text;
        _pending += text;

        int first = -1;
        foreach (var s in _stops)
        {
            int at = _pending.IndexOf(s, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first)) first = at;
        }
        if (first >= 0)
        {
            stopped = true;
            string before = _pending[..first];
            _pending = "";
            return before;
        }

        int hold = 0;
        foreach (var s in _stops)
            for (int k = Math.Min(s.Length - 1, _pending.Length); k > hold; k--)
                if (_pending.AsSpan(_pending.Length - k).SequenceEqual(s.AsSpan(0, k)))
                {
                    hold = k;
                    break;
                }
        string release = _pending[..^hold];
        _pending = _pending[^hold..];
        return release;
    }

    /// <summary>Returns the held-back text at the end of the stream (no stop string completed).</summary>
    public string Flush()
    {
        string rest = _pending;
        _pending = "";
        return rest;
    }
}
