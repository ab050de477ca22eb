namespace Disagg.Cuda.Loading;

/// <summary>The decoder-only model families Disagg can run. They share the Llama block layout and differ in details.</summary>
public enum ModelArchitecture
{
    /// <summary>Llama 2 / 3 / 3.1 / 3.2 (<c>LlamaForCausalLM</c>); optional attention and MLP biases.</summary>
    Llama,
    /// <summary>Qwen2 / Qwen2.5 (<c>Qwen2ForCausalLM</c>); q/k/v projections always have biases.</summary>
    Qwen2,
    /// <summary>Qwen3 dense (<c>Qwen3ForCausalLM</c>); RMS norms on queries and keys per head, explicit head_dim.</summary>
    Qwen3,
    /// <summary>Mistral (<c>MistralForCausalLM</c>); optional sliding-window attention.</summary>
    Mistral,
}
