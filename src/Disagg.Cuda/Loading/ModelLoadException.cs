namespace Disagg.Cuda.Loading;

/// <summary>
/// A model directory, checkpoint or configuration file that cannot be loaded: missing file, malformed
/// safetensors, invalid config.json, or weights that do not match the architecture.
/// The message names the file and the problem.
/// </summary>
public sealed class ModelLoadException : DisaggException
{
    /// <summary>Creates the exception for a problem found in <paramref name="filePath"/>.</summary>
    /// <param name="filePath">The file (or directory) at fault.</param>
    /// <param name="problem">What is wrong with it, as a sentence.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public ModelLoadException(string filePath, string problem, Exception? inner = null)
        : base($"{filePath}: {problem}", inner)
    {
        FilePath = filePath;
        Problem = problem;
    }

    /// <summary>The file (or directory) at fault.</summary>
    public string FilePath { get; }

    /// <summary>What is wrong, without the file path.</summary>
    public string Problem { get; }
}
