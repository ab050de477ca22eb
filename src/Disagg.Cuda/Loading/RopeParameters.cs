namespace Disagg.Cuda.Loading;

/// <summary>How rotary position embedding frequencies are adjusted for context lengths beyond training.</summary>
public enum RopeScalingType
{
    /// <summary>Plain RoPE (config says null or "default").</summary>
    None,
    /// <summary>Positions divided by <see cref="RopeParameters.Factor"/> ("linear").</summary>
    Linear,
    /// <summary>Llama 3.1's frequency-dependent scaling ("llama3").</summary>
    Llama3,
}

/// <summary>
/// Rotary embedding parameters, read from either config.json style: classic (top-level <c>rope_theta</c> plus
/// <c>rope_scaling</c>) or transformers 5 (<c>rope_parameters</c>).
/// </summary>
/// <param name="Theta">The RoPE base (rope_theta).</param>
/// <param name="ScalingType">The scaling scheme.</param>
/// <param name="Factor">Scale factor; 1 when <paramref name="ScalingType"/> is <see cref="RopeScalingType.None"/>.</param>
/// <param name="LowFreqFactor">Llama 3 only: wavelengths longer than original_max / this are fully scaled.</param>
/// <param name="HighFreqFactor">Llama 3 only: wavelengths shorter than original_max / this are left alone.</param>
/// <param name="OriginalMaxPositionEmbeddings">Llama 3 only: the context length of pre-training.</param>
public sealed record RopeParameters(
    double Theta,
    RopeScalingType ScalingType = RopeScalingType.None,
    double Factor = 1.0,
    double? LowFreqFactor = null,
    double? HighFreqFactor = null,
    int? OriginalMaxPositionEmbeddings = null)
{
    /// <summary>The supported rope_type names, for error messages.</summary>
    internal const string SupportedTypeNames = "default, linear, llama3";

    /// <summary>Reads the classic or the transformers 5 style from config.json's root object.</summary>
    internal static RopeParameters Read(JsonFields config)
    {
        const double DefaultTheta = 10_000.0; // the transformers default for every supported family
        JsonFields? scaling;
        double theta;
        if (config.OptionalObject("rope_parameters") is { } parameters)
        {
            // transformers 5: theta and scaling live together; a top-level rope_theta, if any, is the fallback.
            theta = parameters.OptionalDouble("rope_theta") ?? config.OptionalDouble("rope_theta") ?? DefaultTheta;
            scaling = parameters;
            if (!parameters.Has("rope_theta") && !parameters.Has("rope_type") && !parameters.Has("type"))
            {
                throw config.Invalid("rope_parameters", "holds neither rope_theta nor rope_type (per-layer-type rope parameters are not supported).");
            }
        }
        else
        {
            scaling = config.OptionalObject("rope_scaling");
            // Some transitional configs put rope_theta inside rope_scaling.
            theta = config.OptionalDouble("rope_theta") ?? scaling?.OptionalDouble("rope_theta") ?? DefaultTheta;
        }
        if (theta <= 0) throw config.Invalid("rope_theta", $"must be positive, but is {theta}.");
        if (scaling is not { } s) return new RopeParameters(theta);

        string type = s.OptionalString("rope_type") ?? s.OptionalString("type") ?? "default";
        switch (type)
        {
            case "default":
                return new RopeParameters(theta);
            case "linear":
                return new RopeParameters(theta, RopeScalingType.Linear, PositiveFactor(s, "factor"));
            case "llama3":
                double factor = PositiveFactor(s, "factor");
                double low = PositiveFactor(s, "low_freq_factor");
                double high = PositiveFactor(s, "high_freq_factor");
                if (high <= low) throw s.Invalid("high_freq_factor", $"({high}) must exceed low_freq_factor ({low}).");
                int original = s.OptionalInt("original_max_position_embeddings") ?? throw s.Missing("original_max_position_embeddings");
                if (original <= 0) throw s.Invalid("original_max_position_embeddings", $"must be positive, but is {original}.");
                return new RopeParameters(theta, RopeScalingType.Llama3, factor, low, high, original);
            default:
                throw s.Invalid("rope_type", $"is '{type}', which is not supported (supported: {SupportedTypeNames}).");
        }
    }

    private static double PositiveFactor(JsonFields fields, string name)
    {
        double value = fields.OptionalDouble(name) ?? throw fields.Missing(name);
        if (value <= 0) throw fields.Invalid(name, $"must be positive, but is {value}.");
        return value;
    }
}
