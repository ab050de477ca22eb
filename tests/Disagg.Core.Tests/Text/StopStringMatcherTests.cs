using Disagg.Text;
using FsCheck.Xunit;

namespace Disagg.Tests.Text;

public class StopStringMatcherTests
{
    /// <summary>
    /// Random text over a tiny alphabet (so stop strings occur often), random stop strings, random chunking. What the matcher
    /// shows is exactly the text up to where a stop string starts, stopping at the first chunk in which one completes;
    /// without a completed stop string, all of the text.
    /// </summary>
    [Property(MaxTest = 500)]
    public void Shows_exactly_the_text_before_the_first_completed_stop_string(int seed)
    {
        var random = new Random(seed);
        string Word(int min, int max) => new([.. Enumerable.Range(0, random.Next(min, max)).Select(_ => "abc"[random.Next(3)])]);
        string text = Word(0, 40);
        var stops = Enumerable.Range(0, random.Next(0, 4)).Select(_ => Word(1, 5)).ToArray();
        var chunks = new List<string>();
        for (int at = 0; at < text.Length;)
        {
            int n = Math.Min(random.Next(0, 5), text.Length - at);
            chunks.Add(text.Substring(at, n));
            at += n;
        }

        var matcher = new StopStringMatcher(stops);
        string shown = "";
        int consumed = 0, consumedBefore = 0, stoppedAfterChunk = -1;
        for (int i = 0; i < chunks.Count; i++)
        {
            shown += matcher.Push(chunks[i], out bool stopped);
            consumedBefore = consumed;
            consumed += chunks[i].Length;
            if (stopped)
            {
                stoppedAfterChunk = consumed;
                break;
            }
        }
        if (stoppedAfterChunk < 0) shown += matcher.Flush();

        bool Contains(string s) => stops.Any(stop => s.Contains(stop, StringComparison.Ordinal));
        if (stoppedAfterChunk < 0)
        {
            Assert.False(Contains(text));
            Assert.Equal(text, shown);
            return;
        }
        // It stopped at the first chunk whose text completed a stop string, and showed text up to that stop string's start.
        Assert.True(Contains(text[..stoppedAfterChunk]));
        Assert.False(Contains(text[..consumedBefore]));
        Assert.StartsWith(shown, text, StringComparison.Ordinal);
        Assert.Contains(stops, stop => text[shown.Length..].StartsWith(stop, StringComparison.Ordinal));
        Assert.False(Contains(shown));
    }

    [Fact]
    public void Holds_back_a_possible_stop_string_and_releases_it_when_it_is_not_one()
    {
        var matcher = new StopStringMatcher(["</end>"]);
        Assert.Equal("Hello ", matcher.Push("Hello </", out bool stopped));
        Assert.False(stopped);
        Assert.Equal("</ex", matcher.Push("ex", out _));
        Assert.Equal("", matcher.Flush());
    }

    [Fact]
    public void A_stop_string_split_across_chunks_is_found_and_hidden()
    {
        var matcher = new StopStringMatcher(["STOP", "\n\n"]);
        Assert.Equal("one ", matcher.Push("one ST", out bool stopped));
        Assert.False(stopped);
        Assert.Equal("", matcher.Push("OP two", out stopped));
        Assert.True(stopped);
    }

    [Fact]
    public void Empty_stop_strings_are_rejected()
    {
        Assert.Throws<ArgumentException>(() => new StopStringMatcher(["ok", ""]));
    }
}
