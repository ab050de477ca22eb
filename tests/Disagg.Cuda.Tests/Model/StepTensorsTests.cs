using Disagg.Cuda.Model;
using Disagg.Cuda.Runtime;
using Disagg.Scheduling;
using FsCheck;
using FsCheck.Fluent;
using TorchSharp;

namespace Disagg.Cuda.Tests.Model;

/// <summary>
/// A step's index tensors, built in one upload and handed out as views of it, against each one written out naively from
/// the batch: token ids, positions, cache slots, sampling rows, each chunk's context slots and flash sequence lengths, and
/// the padded decode batch with its sliding-window mask.
/// </summary>
public sealed class StepTensorsTests
{
    public StepTensorsTests() => TorchRuntime.Initialize();

    private sealed record ChunkSpec(int Length, int Start, int Count, bool Samples, int Seed);

    [Fact]
    public void Every_index_tensor_holds_what_the_batch_says()
    {
        var chunk = from length in Gen.Choose(1, 70)
                    from single in Gen.Frequency((2, Gen.Constant(true)), (3, Gen.Constant(false)))
                    from start in Gen.Choose(0, length - 1)
                    from count in single ? Gen.Constant(1) : Gen.Choose(1, length - start)
                    from samples in Gen.Elements(true, false)
                    from seed in Gen.Choose(0, 1_000_000)
                    select new ChunkSpec(length, start, count, samples, seed);
        var steps = from chunks in Gen.NonEmptyListOf(chunk)
                    from window in Gen.Elements<int?>(null, 4, 16)
                    from int32 in Gen.Elements(true, false)
                    from lengths in Gen.Elements(true, false)
                    select (Chunks: chunks.Take(6).ToArray(), Window: window, Int32: int32, Lengths: lengths);
        Prop.ForAll(steps.ToArbitrary(), s =>
        {
            using var scope = torch.NewDisposeScope();
            const int BlockSize = 4;
            var batch = s.Chunks.Select(c => Make(c, BlockSize)).ToArray();
            var step = StepTensors.Build(batch, BlockSize, s.Window, torch.CPU, s.Int32, s.Lengths);

            long Slot(ScheduledChunk c, int p) => (long)c.Sequence.BlockTable[p / BlockSize] * BlockSize + p % BlockSize;
            var ids = batch.SelectMany(c => Enumerable.Range(c.Start, c.Count).Select(p => (long)c.Sequence.Tokens[p]));
            var positions = batch.SelectMany(c => Enumerable.Range(c.Start, c.Count).Select(p => (long)p));
            var slots = batch.SelectMany(c => Enumerable.Range(c.Start, c.Count).Select(p => Slot(c, p)));
            var rowEnds = batch.Select((c, i) => batch.Take(i + 1).Sum(x => x.Count)).ToArray();
            var sampleRows = batch.Select((c, i) => (c, i)).Where(x => x.c.SamplesToken).Select(x => (long)rowEnds[x.i] - 1);

            Assert.Equal(ids, Longs(step.TokenIds));
            Assert.Equal(s.Int32 ? torch.ScalarType.Int32 : torch.ScalarType.Int64, step.Positions.dtype);
            Assert.Equal(step.Positions.dtype, step.Slots.dtype);
            Assert.Equal(positions, Longs(step.Positions));
            Assert.Equal(slots, Longs(step.Slots));
            Assert.Equal(sampleRows, Longs(step.SampleRows));

            int decodeCount = batch.Count(c => c.Count == 1);
            bool batched = decodeCount > 1;
            for (int i = 0; i < batch.Length; i++)
            {
                var c = batch[i];
                var built = step.Chunks[i];
                Assert.Equal((rowEnds[i] - c.Count, c.Count, c.Start, c.End), (built.TokenOffset, built.Count, built.Start, built.ContextLength));
                Assert.Equal(batched && c.Count == 1, built.IsBatchedDecode);
                if (built.IsBatchedDecode) continue;
                Assert.Equal(Enumerable.Range(0, c.End).Select(p => Slot(c, p)), Longs(built.ContextSlots!));
                if (s.Lengths && c.Count > 1)
                {
                    Assert.Equal(torch.ScalarType.Int32, built.SequenceLengths!.dtype);
                    Assert.Equal([0L, c.Count, 0, c.End], Longs(built.SequenceLengths));
                }
                else Assert.Null(built.SequenceLengths);
            }

            Assert.Equal(batched, step.Decode is not null);
            if (step.Decode is not { } d) return;
            var decodes = batch.Select((c, i) => (c, i)).Where(x => x.c.Count == 1).ToArray();
            int longest = decodes.Max(x => x.c.End);
            Assert.Equal(longest, d.MaxLength);
            Assert.Equal(decodes.Select(x => (long)rowEnds[x.i] - 1), Longs(d.Rows));
            Assert.Equal(decodes.SelectMany(x => Enumerable.Range(0, longest).Select(p => p < x.c.End ? Slot(x.c, p) : 0)), Longs(d.Slots));
            Assert.Equal([decodes.Length, 1, 1, longest], d.Mask.shape);
            Assert.Equal(torch.ScalarType.Bool, d.Mask.dtype);
            var mask = d.Mask.reshape(-1).data<bool>().ToArray();
            var expected = decodes.SelectMany(x => Enumerable.Range(0, longest)
                .Select(p => p < x.c.End && (s.Window is not { } w || p > x.c.Start - w)));
            Assert.Equal(expected, mask);
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(200));
    }

    /// <summary>A chunk of a sequence with its own shuffled blocks, so that slots are not positions.</summary>
    private static ScheduledChunk Make(ChunkSpec spec, int blockSize)
    {
        var rng = new Random(spec.Seed);
        int[] prompt = [.. Enumerable.Range(0, spec.Length).Select(_ => rng.Next(1000))];
        var seq = new Sequence(new InferenceRequest(prompt, SamplingParameters.Greedy));
        int blocks = (spec.Length + blockSize - 1) / blockSize;
        foreach (int b in Enumerable.Range(0, 64).OrderBy(_ => rng.Next()).Take(blocks)) seq.AddBlock(b);
        return new ScheduledChunk(seq, spec.Start, spec.Count, spec.Samples);
    }

    private static long[] Longs(torch.Tensor t) => t.to(torch.ScalarType.Int64).data<long>().ToArray();
}
