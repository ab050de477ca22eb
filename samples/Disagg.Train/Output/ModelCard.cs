using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Disagg.Train.Corpus;
using Disagg.Train.Model;
using Disagg.Train.Tokenizer;
using Disagg.Train.Training;

namespace Disagg.Train.Output;

/// <summary>What a run produced, for eval.json and the README.</summary>
internal sealed record RunSummary(
    ModelShape Shape,
    long SafetensorsBytes,
    TrainSettings Settings,
    string Device,
    int TrainingChapters,
    int TrainingDocuments,
    int StreamTokens,
    IReadOnlyList<Chapter> HeldOutChapters,
    int HeldOutTokens,
    PerplexityResult HeldOut,
    IReadOnlyList<TrainingPoint> Curve,
    double TrainingSeconds);

/// <summary>Writes heldout.txt, eval.json and README.md (the data, size, training run and held-out perplexity).</summary>
internal static class ModelCard
{
    public const string HeldOutFileName = "heldout.txt", EvalFileName = "eval.json";

    public static void Write(RunSummary run, string heldOutText, string directory)
    {
        File.WriteAllText(Path.Combine(directory, HeldOutFileName), heldOutText, new UTF8Encoding(false));
        string sha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(heldOutText)));
        TokenizerFiles.WriteJson(Path.Combine(directory, EvalFileName), json =>
        {
            json.WriteStartObject();
            json.WriteString("heldout_file", HeldOutFileName);
            json.WriteString("heldout_sha256", sha);
            json.WriteString("heldout_split", $"chapters i (0-based, canonical order) with i % {KjvCorpus.HeldOutEvery} == {KjvCorpus.HeldOutOffset}");
            json.WriteStartArray("heldout_chapters");
            foreach (var chapter in run.HeldOutChapters) json.WriteStringValue(chapter.Title);
            json.WriteEndArray();
            json.WriteNumber("tokens", run.HeldOutTokens);
            json.WriteNumber("context_length", run.Settings.EvaluationContext);
            json.WriteNumber("stride", run.Settings.EvaluationContext);
            json.WriteNumber("windows", run.HeldOut.Windows);
            json.WriteNumber("predicted_tokens", run.HeldOut.PredictedTokens);
            json.WriteNumber("mean_nll", run.HeldOut.MeanNegativeLogLikelihood);
            json.WriteNumber("perplexity", run.HeldOut.Perplexity);
            json.WriteString("computed_with", $"Disagg.Train's own model, float32 (TF32 off), on {run.Device}, from the bfloat16 weights stored");
            json.WriteEndObject();
        });
        File.WriteAllText(Path.Combine(directory, "README.md"), Readme(run), new UTF8Encoding(false));
    }

    private static string Readme(RunSummary run)
    {
        var s = run.Shape;
        var t = run.Settings;
        var final = run.Curve[^1];
        long tokensSeen = (long)t.Steps * t.BatchSize * t.Context;
        var text = new StringBuilder();
        var c = CultureInfo.InvariantCulture;
        text.Append(c, $"""
            # disagg-demo

            A small Llama-architecture chat model trained from scratch by `samples/Disagg.Train`, bundled so that
            `dotnet run --project samples/Disagg.Chat` works with no download. It writes King James English; it knows
            nothing past what that text holds, and it is a demonstration, not an assistant.

            ## Data

            The King James Version of the Bible (1611; public domain), as Debian's `bible-kjv-text` package ships it
            (`samples/Disagg.Train/prepare_corpus.sh` writes it out: 66 books, 1,189 chapters, 31,102 verses).
            Held out, never trained on (tokenizer included): the {run.HeldOutChapters.Count} chapters i with
            i % {KjvCorpus.HeldOutEvery} == {KjvCorpus.HeldOutOffset} in canonical order ({string.Join(", ", run.HeldOutChapters.Take(4).Select(ch => ch.Title))}, ...);
            their text is `heldout.txt`. Training documents ({run.TrainingDocuments:N0}) are the other {run.TrainingChapters:N0} chapters as
            plain text ("Genesis 1", a blank line, one verse a line) and ChatML conversations made from them: a verse
            answered with the next one or two, a verse asked for by reference ("What does John 3:16 say?"), a chapter's
            opening asked for ("Tell me about Genesis 1."), sometimes a second turn ("Go on."). Every document ends in
            `<|endoftext|>`; packed together they make {run.StreamTokens:N0} tokens.

            ## Model

            `LlamaForCausalLM`: {s.Layers} layers, hidden size {s.HiddenSize}, {s.Heads} query heads and {s.KeyValueHeads} key/value heads
            of size {s.HeadDim} (grouped-query attention), SwiGLU MLP of {s.IntermediateSize}, RMSNorm, RoPE (theta {ModelShape.RopeTheta:0}),
            tied input/output embeddings, context {s.MaxPositions} tokens. {s.ParameterCount:N0} parameters, stored in bfloat16
            (`model.safetensors`, {run.SafetensorsBytes:N0} bytes).

            Tokenizer: byte-level BPE with Llama 3's split pattern, {s.VocabSize:N0} tokens (the 256 bytes, {s.VocabSize - 259:N0}
            merged tokens learned by `Disagg.Train`'s own BPE trainer on the training text, then `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`), written
            as a standard `tokenizer.json`; the chat template is ChatML without a default system message, and generation
            ends at `<|im_end|>` (or `<|endoftext|>`).

            ## Use

            ```sh
            dotnet run --project samples/Disagg.Chat                                             # interactive chat
            dotnet run --project samples/Disagg.Chat -- --prompt "What does John 3:16 say?"     # one answer
            ```

            Sampled answers (the chat sample's default, temperature 0.7) read as King James verses and end their turn; greedy
            decoding (`--temperature 0`) of a model this small soon repeats itself.

            ## Training run

            | | |
            | --- | --- |
            | device | {run.Device} |
            | steps | {t.Steps:N0}, batch {t.BatchSize} x {t.Context} tokens ({tokensSeen:N0} tokens, {(double)tokensSeen / run.StreamTokens:F1} passes over the data) |
            | optimiser | AdamW (betas 0.9, 0.95; weight decay {t.WeightDecay} on matrices), peak rate {t.PeakLearningRate}, {t.WarmupSteps} warm-up steps, cosine to {t.FloorRatio:0.##} of the peak, gradients clipped to {t.ClipNorm} |
            | precision | float32 weights, TF32 matrix products; weights rounded to bfloat16 at the end |
            | seed | {t.Seed} |
            | time | {run.TrainingSeconds:F0} s |
            | final train loss | {final.TrainLoss:F3} (mean of the last {t.EvaluateEvery} steps or fewer) |

            | step | learning rate | train loss | held-out perplexity |
            | ---: | ---: | ---: | ---: |

            """);
        foreach (var point in run.Curve)
            text.Append(c, $"| {point.Step} | {point.LearningRate:E2} | {point.TrainLoss:F3} | {(point.HeldOutPerplexity is { } p ? p.ToString("F2", c) : "-")} |\n");
        text.Append(c, $"""

            ## Held-out perplexity

            **{run.HeldOut.Perplexity:F3}** over `heldout.txt` ({run.HeldOutTokens:N0} tokens): consecutive non-overlapping windows of
            {t.EvaluationContext} tokens (stride {t.EvaluationContext}), each token after a window's first predicted from those before it
            in its window ({run.HeldOut.PredictedTokens:N0} predictions in {run.HeldOut.Windows} windows), float32 from the stored bfloat16
            weights. `eval.json` holds the numbers; Disagg's tests recompute them on CPU through the normal loader, and
            `hf_golden.json` holds HF transformers' logits for the same checkpoint.

            ## Reproduce

            ```sh
            samples/Disagg.Train/prepare_corpus.sh kjv.tsv
            dotnet run -c Release --project samples/Disagg.Train -- --corpus kjv.tsv --out samples/models/disagg-demo --device cuda
            python3 samples/Disagg.Train/hf_golden.py samples/models/disagg-demo
            ```

            """);
        return text.ToString();
    }
}
