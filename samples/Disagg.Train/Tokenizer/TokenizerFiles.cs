using System.Text.Encodings.Web;
using System.Text.Json;

namespace Disagg.Train.Tokenizer;

/// <summary>
/// Writes a trained vocabulary as the Hugging Face tokenizer files: tokenizer.json (a byte-level BPE with Llama 3's split
/// pattern, laid out as Qwen2's: no normalizer, no BOS, special tokens after the vocabulary) and tokenizer_config.json
/// (eos/pad tokens and a ChatML chat template). HF tokenizers/transformers and Disagg's <c>ModelTokenizer</c> read both.
/// </summary>
internal static class TokenizerFiles
{
    /// <summary>ChatML with no default system message: what <c>ChatMLChatTemplate</c> renders and the trainer trains on.</summary>
    public const string ChatTemplate =
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    public static readonly JsonWriterOptions Options = new() { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static void Write(BpeVocabulary vocabulary, string directory, int maxLength)
    {
        WriteJson(Path.Combine(directory, "tokenizer.json"), json => WriteTokenizer(json, vocabulary));
        WriteJson(Path.Combine(directory, "tokenizer_config.json"), json =>
        {
            json.WriteStartObject();
            json.WriteString("tokenizer_class", "PreTrainedTokenizerFast");
            json.WriteNull("bos_token");
            json.WriteString("eos_token", SpecialTokens.ImEnd);
            json.WriteString("pad_token", SpecialTokens.EndOfText);
            json.WriteBoolean("add_bos_token", false);
            json.WriteBoolean("clean_up_tokenization_spaces", false);
            json.WriteNumber("model_max_length", maxLength);
            json.WriteString("chat_template", ChatTemplate);
            json.WriteEndObject();
        });
    }

    public static void WriteJson(string path, Action<Utf8JsonWriter> write)
    {
        using var stream = File.Create(path);
        using var json = new Utf8JsonWriter(stream, Options);
        write(json);
        json.Flush();
        stream.WriteByte((byte)'\n');
    }

    private static void WriteTokenizer(Utf8JsonWriter json, BpeVocabulary vocabulary)
    {
        json.WriteStartObject();
        json.WriteString("version", "1.0");
        json.WriteNull("truncation");
        json.WriteNull("padding");
        json.WriteStartArray("added_tokens");
        foreach (string token in vocabulary.SpecialTokens)
        {
            json.WriteStartObject();
            json.WriteNumber("id", vocabulary.SpecialTokenId(token));
            json.WriteString("content", token);
            json.WriteBoolean("single_word", false);
            json.WriteBoolean("lstrip", false);
            json.WriteBoolean("rstrip", false);
            json.WriteBoolean("normalized", false);
            json.WriteBoolean("special", true);
            json.WriteEndObject();
        }
        json.WriteEndArray();
        json.WriteNull("normalizer");

        json.WriteStartObject("pre_tokenizer");
        json.WriteString("type", "Sequence");
        json.WriteStartArray("pretokenizers");
        json.WriteStartObject();
        json.WriteString("type", "Split");
        json.WriteStartObject("pattern");
        json.WriteString("Regex", PreTokenizer.Pattern);
        json.WriteEndObject();
        json.WriteString("behavior", "Isolated");
        json.WriteBoolean("invert", false);
        json.WriteEndObject();
        WriteByteLevel(json, "ByteLevel", addPrefixSpace: false, trimOffsets: true, useRegex: false);
        json.WriteEndArray();
        json.WriteEndObject();

        json.WritePropertyName("post_processor");
        WriteByteLevel(json, "ByteLevel", addPrefixSpace: true, trimOffsets: false, useRegex: true);
        json.WritePropertyName("decoder");
        WriteByteLevel(json, "ByteLevel", addPrefixSpace: true, trimOffsets: true, useRegex: true);

        json.WriteStartObject("model");
        json.WriteString("type", "BPE");
        json.WriteNull("dropout");
        json.WriteNull("unk_token");
        json.WriteNull("continuing_subword_prefix");
        json.WriteNull("end_of_word_suffix");
        json.WriteBoolean("fuse_unk", false);
        json.WriteBoolean("byte_fallback", false);
        json.WriteBoolean("ignore_merges", false);
        json.WriteStartObject("vocab");
        for (int id = 0; id < vocabulary.TokenBytes.Count; id++) json.WriteNumber(ByteSymbols.Of(vocabulary.TokenBytes[id]), id);
        json.WriteEndObject();
        json.WriteStartArray("merges");
        foreach (var (left, right, _) in vocabulary.Merges)
        {
            json.WriteStartArray();
            json.WriteStringValue(ByteSymbols.Of(vocabulary.TokenBytes[left]));
            json.WriteStringValue(ByteSymbols.Of(vocabulary.TokenBytes[right]));
            json.WriteEndArray();
        }
        json.WriteEndArray();
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void WriteByteLevel(Utf8JsonWriter json, string type, bool addPrefixSpace, bool trimOffsets, bool useRegex)
    {
        json.WriteStartObject();
        json.WriteString("type", type);
        json.WriteBoolean("add_prefix_space", addPrefixSpace);
        json.WriteBoolean("trim_offsets", trimOffsets);
        json.WriteBoolean("use_regex", useRegex);
        json.WriteEndObject();
    }
}
