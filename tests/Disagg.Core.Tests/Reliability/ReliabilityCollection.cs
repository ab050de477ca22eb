namespace Disagg.Tests.Reliability;

/// <summary>Reliability tests that count process-wide things (unobserved task exceptions, memory) run alone.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ReliabilityCollection
{
    public const string Name = "Reliability";
}
