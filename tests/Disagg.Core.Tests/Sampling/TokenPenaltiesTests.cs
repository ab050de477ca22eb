using Disagg.Sampling;
using FsCheck.Xunit;

namespace Disagg.Tests.Sampling;

public class TokenPenaltiesTests
{
    /// <summary>
    /// A sequence that grows a few tokens at a time, counted incrementally by one instance, gives after every step the
    /// entries that counting its whole history from scratch gives; a shorter history or another prompt length starts over
    /// (a history that is longer but different is the caller's mistake: a sequence only grows).
    /// </summary>
    [Property(MaxTest = 300)]
    public bool Incremental_counts_equal_counting_from_scratch(int seed)
    {
        var random = new Random(seed);
        var kinds = new[]
        {
            new SamplingParameters { RepetitionPenalty = 1.3f },
            new SamplingParameters { PresencePenalty = 0.5f, FrequencyPenalty = -0.25f },
            new SamplingParameters { RepetitionPenalty = 0.9f, FrequencyPenalty = 1f },
            new SamplingParameters { Temperature = 0.5f },
        };
        var incremental = new TokenPenalties();
        var tokens = new List<int>();
        int promptLength = random.Next(0, 12);
        for (int i = 0; i < promptLength; i++) tokens.Add(random.Next(20));
        for (int step = 0; step < 30; step++)
        {
            if (random.Next(10) == 0) // cut short, or another prompt length: seen by the next Update, which starts over
            {
                int keep = random.Next(0, tokens.Count + 1);
                tokens.RemoveRange(keep, tokens.Count - keep);
                promptLength = random.Next(0, tokens.Count + 1);
                incremental.Update(tokens.ToArray(), promptLength);
            }
            int grow = random.Next(0, 4);
            for (int i = 0; i < grow; i++) tokens.Add(random.Next(20));
            var p = kinds[random.Next(kinds.Length)];

            incremental.Update(tokens.ToArray(), promptLength);
            var got = new List<PenalizedToken>();
            incremental.AppendTo(p, got);
            var expected = new List<PenalizedToken>();
            new TokenPenalties().Collect(tokens.ToArray(), promptLength, p, expected);
            if (!got.OrderBy(t => t.Token).SequenceEqual(expected.OrderBy(t => t.Token))) return false;
        }
        return true;
    }

    [Fact]
    public void Update_refuses_a_prompt_longer_than_the_sequence()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenPenalties().Update([1, 2], promptLength: 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => new TokenPenalties().Update([1, 2], promptLength: -1));
    }
}

public class PenaltyTableTests
{
    [Fact]
    public void Rows_land_at_their_flat_positions_with_their_output_counts()
    {
        var first = new TokenPenalties();
        first.Update([3, 5, 5, 3, 3, 9], promptLength: 2); // prompt 3 5; output 5 3 3 9; 9 is outside a vocabulary of 8
        var second = new TokenPenalties();
        second.Update([0, 7], promptLength: 1);
        var table = new PenaltyTable();

        table.Add(0, vocab: 8, first);
        table.Add(2, vocab: 8, second);

        var pairs = table.Pairs.ToArray().Chunk(2).Select(p => (Position: p[0], Count: p[1])).OrderBy(p => p.Position).ToArray();
        Assert.Equal([(3, 2), (5, 1), (16, 0), (23, 1)], pairs);
        Assert.Equal(4, table.Count);
        table.Clear();
        Assert.Equal(0, table.Count);
        Assert.True(table.Pairs.IsEmpty);
    }

    [Fact]
    public void Positions_beyond_32_bits_are_refused()
    {
        var counts = new TokenPenalties();
        counts.Update([1], promptLength: 1);
        Assert.Throws<OverflowException>(() => new PenaltyTable().Add(20_000, vocab: 152_000, counts));
    }
}
