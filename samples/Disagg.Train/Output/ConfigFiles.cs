using System.Text.Json;
using Disagg.Train.Model;
using Disagg.Train.Tokenizer;

namespace Disagg.Train.Output;

/// <summary>config.json (classic HF Llama style: rope_theta, torch_dtype) and generation_config.json.</summary>
internal static class ConfigFiles
{
    public static void Write(ModelShape shape, BpeVocabulary vocabulary, string directory)
    {
        int endOfText = vocabulary.SpecialTokenId(SpecialTokens.EndOfText), imEnd = vocabulary.SpecialTokenId(SpecialTokens.ImEnd);
        TokenizerFiles.WriteJson(Path.Combine(directory, "config.json"), json =>
        {
            json.WriteStartObject();
            json.WriteStartArray("architectures");
            json.WriteStringValue("LlamaForCausalLM");
            json.WriteEndArray();
            json.WriteString("model_type", "llama");
            json.WriteNumber("vocab_size", shape.VocabSize);
            json.WriteNumber("hidden_size", shape.HiddenSize);
            json.WriteNumber("intermediate_size", shape.IntermediateSize);
            json.WriteNumber("num_hidden_layers", shape.Layers);
            json.WriteNumber("num_attention_heads", shape.Heads);
            json.WriteNumber("num_key_value_heads", shape.KeyValueHeads);
            json.WriteNumber("head_dim", shape.HeadDim);
            json.WriteString("hidden_act", "silu");
            json.WriteNumber("max_position_embeddings", shape.MaxPositions);
            json.WriteNumber("rms_norm_eps", ModelShape.RmsNormEps);
            json.WriteNumber("rope_theta", ModelShape.RopeTheta);
            json.WriteNull("rope_scaling");
            json.WriteBoolean("attention_bias", false);
            json.WriteNumber("attention_dropout", 0.0);
            json.WriteBoolean("mlp_bias", false);
            json.WriteBoolean("tie_word_embeddings", true);
            json.WriteNumber("initializer_range", 0.02);
            json.WriteNumber("bos_token_id", endOfText);
            json.WriteNumber("eos_token_id", imEnd);
            json.WriteNumber("pad_token_id", endOfText);
            json.WriteString("torch_dtype", "bfloat16");
            json.WriteBoolean("use_cache", true);
            json.WriteEndObject();
        });
        TokenizerFiles.WriteJson(Path.Combine(directory, "generation_config.json"), json =>
        {
            json.WriteStartObject();
            json.WriteNumber("bos_token_id", endOfText);
            json.WriteStartArray("eos_token_id");
            json.WriteNumberValue(imEnd);
            json.WriteNumberValue(endOfText);
            json.WriteEndArray();
            json.WriteNumber("pad_token_id", endOfText);
            json.WriteEndObject();
        });
    }
}
