namespace Disagg.Train.Training;

/// <summary>The optimisation settings of one training run.</summary>
internal sealed record TrainSettings
{
    public int Steps { get; init; } = 320;
    public int BatchSize { get; init; } = 32;
    public int Context { get; init; } = 1024;
    public double PeakLearningRate { get; init; } = 1.5e-3;
    public int WarmupSteps { get; init; } = 40;
    public double FloorRatio { get; init; } = 0.05;
    public double WeightDecay { get; init; } = 0.1;
    public double ClipNorm { get; init; } = 1.0;
    public int Seed { get; init; } = 1234;
    public int EvaluateEvery { get; init; } = 40;
    public int EvaluationContext { get; init; } = 256;

    public LearningRateSchedule Schedule => new(PeakLearningRate, WarmupSteps, Steps, FloorRatio);
}
