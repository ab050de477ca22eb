using Disagg.Cuda.Model;
using Disagg.Scheduling;
using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Cuda.Tests.Model;

/// <summary>
/// Which chunks of a mixed step go to the decoder and which to the TorchSharp forward, and where each sampling row's token
/// goes back: the host side of the split, which on the GPU also picks the decoder's sampling rows out of its outputs.
/// </summary>
public sealed class StepPartitionTests
{
    [Fact]
    public void Single_token_chunks_up_to_the_limit_go_to_the_decoder_and_rows_map_back_to_their_chunks()
    {
        ScheduledChunk[] step =
        [
            Decode(),                          // 0: decode row, samples
            Prompt(count: 5, samples: true),   // 1: prompt chunk reaching its end
            Decode(),                          // 2: decode row
            Prompt(count: 1, samples: false),  // 3: one token of a longer prompt: a decode row that does not sample
            Prompt(count: 3, samples: false),  // 4: prompt chunk in the middle
            Decode(),                          // 5: beyond the limit of 3 rows: to the forward
        ];
        var partition = new StepPartition();

        Assert.True(partition.Split(step, maxDecodeRows: 3, maxBlocks: 8));

        Assert.Equal([step[0], step[2], step[3]], partition.DecodeRows.ToArray());
        Assert.Equal([step[1], step[4], step[5]], partition.ForwardChunks.ToArray());
        Assert.Equal([0, 2, 1, 5], partition.RowChunks.ToArray());       // the decoder's sampling rows, then the forward's
        Assert.Equal([0L, 1], partition.DecodeSamplingRows.ToArray());   // rows 0 and 1 of the decoder's outputs
    }

    [Fact]
    public void A_row_whose_block_table_is_too_wide_for_the_decoder_runs_in_the_forward()
    {
        ScheduledChunk[] step = [Decode(blocks: 9), Prompt(count: 4, samples: true), Decode(blocks: 2)];
        var partition = new StepPartition();

        Assert.True(partition.Split(step, maxDecodeRows: 64, maxBlocks: 8));

        Assert.Equal([step[2]], partition.DecodeRows.ToArray());
        Assert.Equal([step[0], step[1]], partition.ForwardChunks.ToArray());
        Assert.Equal([2, 0, 1], partition.RowChunks.ToArray());
    }

    [Fact]
    public void A_step_with_no_row_for_the_decoder_is_not_split()
    {
        ScheduledChunk[] step = [Decode(blocks: 9), Prompt(count: 4, samples: true)];
        var partition = new StepPartition();
        Assert.False(partition.Split(step, maxDecodeRows: 64, maxBlocks: 8));
        Assert.True(partition.DecodeRows.IsEmpty);
        Assert.True(partition.ForwardChunks.IsEmpty);
    }

    [Fact]
    public void Only_steps_with_both_kinds_of_chunk_are_mixed()
    {
        Assert.True(StepPartition.IsMixed([Decode(), Prompt(2, true)]));
        Assert.False(StepPartition.IsMixed([Decode(), Decode()]));
        Assert.False(StepPartition.IsMixed([Prompt(2, true), Prompt(7, false)]));
        Assert.False(StepPartition.IsMixed([]));
    }

    [Fact]
    public void An_unsplit_step_keeps_its_sampling_rows_in_chunk_order()
    {
        ScheduledChunk[] step = [Prompt(3, false), Decode(), Prompt(1, false), Decode()];
        var partition = new StepPartition();
        partition.Whole(step);
        Assert.Equal([1, 3], partition.RowChunks.ToArray());
        Assert.Equal([1L, 3], partition.DecodeSamplingRows.ToArray());
    }

    [Fact]
    public void Reuse_across_steps_leaves_nothing_of_the_previous_step()
    {
        var partition = new StepPartition();
        Assert.True(partition.Split([Decode(), Decode(), Prompt(4, true), Decode()], maxDecodeRows: 64, maxBlocks: 8));
        ScheduledChunk[] next = [Prompt(2, true), Decode()];
        Assert.True(partition.Split(next, maxDecodeRows: 64, maxBlocks: 8));
        Assert.Equal([next[1]], partition.DecodeRows.ToArray());
        Assert.Equal([next[0]], partition.ForwardChunks.ToArray());
        Assert.Equal([1, 0], partition.RowChunks.ToArray());
        partition.Release();
        Assert.True(partition.DecodeRows.IsEmpty && partition.ForwardChunks.IsEmpty && partition.RowChunks.IsEmpty);
    }

    /// <summary>Over random steps, against the rule written as a query: every chunk runs in exactly one part, in step order
    /// within it, and every sampling chunk gets exactly one row (the decoder's rows first).</summary>
    [Fact]
    public void Every_chunk_runs_once_and_every_sampling_chunk_gets_one_row()
    {
        var chunk = from count in Gen.Frequency((3, Gen.Constant(1)), (1, Gen.Choose(2, 9)))
                    from samples in Gen.Frequency((4, Gen.Constant(true)), (1, Gen.Constant(false)))
                    from blocks in Gen.Choose(1, 10)
                    select new ScheduledChunk(WithBlocks(blocks), 0, count, samples);
        var steps = from chunks in chunk.ArrayOf()
                    from maxRows in Gen.Choose(1, 6)
                    select (Chunks: chunks, MaxRows: maxRows);
        var partition = new StepPartition();
        Prop.ForAll(steps.ToArbitrary(), s =>
        {
            const int MaxBlocks = 8;
            var (chunks, maxRows) = s;
            var all = Enumerable.Range(0, chunks.Length).ToArray();
            var decode = all.Where(i => chunks[i].Count == 1 && chunks[i].Sequence.BlockTable.Length <= MaxBlocks).Take(maxRows).ToArray();
            var forward = all.Except(decode).ToArray();
            bool split = partition.Split(chunks, maxRows, MaxBlocks);
            Assert.Equal(decode.Length > 0, split);
            if (!split) return;
            Assert.Equal(decode.Select(i => chunks[i]), partition.DecodeRows.ToArray());
            Assert.Equal(forward.Select(i => chunks[i]), partition.ForwardChunks.ToArray());
            Assert.Equal(decode.Where(i => chunks[i].SamplesToken).Concat(forward.Where(i => chunks[i].SamplesToken)), partition.RowChunks.ToArray());
            Assert.Equal(decode.Select((c, row) => (c, row)).Where(x => chunks[x.c].SamplesToken).Select(x => (long)x.row), partition.DecodeSamplingRows.ToArray());
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(300));
    }

    private static ScheduledChunk Decode(int blocks = 1) => new(WithBlocks(blocks), 0, 1, true);

    private static ScheduledChunk Prompt(int count, bool samples) => new(WithBlocks(2), 0, count, samples);

    private static Sequence WithBlocks(int blocks)
    {
        var seq = new Sequence(new InferenceRequest(new int[16], SamplingParameters.Greedy));
        for (int b = 0; b < blocks; b++) seq.AddBlock(b);
        return seq;
    }
}
