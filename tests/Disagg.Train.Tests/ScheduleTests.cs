using Disagg.Train.Training;
using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Train.Tests;

public class ScheduleTests
{
    [Fact]
    public void The_rate_warms_up_linearly_then_decays_to_the_floor()
    {
        var schedule = new LearningRateSchedule(Peak: 1e-3, WarmupSteps: 10, TotalSteps: 100, FloorRatio: 0.1);
        Assert.Equal(1e-4, schedule.At(1), 12);
        Assert.Equal(1e-3, schedule.At(10), 12);
        Assert.Equal(1e-4, schedule.At(100), 12);
        Assert.Equal((1e-3 + 1e-4) / 2, schedule.At(55), 12); // half way through the cosine
        for (int step = 11; step <= 100; step++) Assert.True(schedule.At(step) <= schedule.At(step - 1));
    }

    [Fact]
    public void Evaluation_windows_tile_the_tokens_and_predict_all_but_each_windows_first()
    {
        TestData.Check(Prop.ForAll(Gen.Choose(0, 5000).ToArbitrary(), Gen.Choose(2, 600).ToArbitrary(), (tokens, context) =>
        {
            var windows = EvaluationWindows.Split(tokens, context).ToList();
            int next = 0;
            foreach (var (start, length) in windows)
            {
                if (start != next || length < 2 || length > context) return false;
                next = start + length;
            }
            // Only a final single token (which predicts nothing) may be left out.
            bool covered = next == tokens || (next == tokens - 1 && tokens % context == 1);
            return covered && EvaluationWindows.PredictedTokens(tokens, context) == next - windows.Count;
        }));
    }
}
