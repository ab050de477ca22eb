namespace Disagg.Train.Training;

/// <summary>Linear warm-up to the peak, then cosine decay to <c>peak * floorRatio</c> at the last step.</summary>
internal sealed record LearningRateSchedule(double Peak, int WarmupSteps, int TotalSteps, double FloorRatio)
{
    /// <summary>The rate for 1-based <paramref name="step"/>.</summary>
    public double At(int step)
    {
        if (step <= WarmupSteps) return Peak * step / Math.Max(1, WarmupSteps);
        double progress = Math.Clamp((double)(step - WarmupSteps) / Math.Max(1, TotalSteps - WarmupSteps), 0, 1);
        double floor = Peak * FloorRatio;
        return floor + (Peak - floor) * 0.5 * (1 + Math.Cos(Math.PI * progress));
    }
}
