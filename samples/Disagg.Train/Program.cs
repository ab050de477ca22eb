using Disagg.Train;

// Disagg.Train: trains the bundled demo model; see TrainOptions.Usage and samples/models/disagg-demo/README.md.
TrainOptions options;
try
{
    options = TrainOptions.Parse(args);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"error: {e.Message}\n\n{TrainOptions.Usage}");
    return 2;
}
if (options.Help)
{
    Console.WriteLine(TrainOptions.Usage);
    return 0;
}
try
{
    TrainingRun.Execute(options, Console.Out);
    return 0;
}
catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or Disagg.DisaggException)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 1;
}
