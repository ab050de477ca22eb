using System.Security.Cryptography;
using System.Text;
using Disagg.Cuda.Loading;
using Disagg.Cuda.Model;
using Disagg.Cuda.Tests.Model;
using Disagg.Text;
using Disagg.Tokenization;

namespace Disagg.Cuda.Tests.DemoModel;

/// <summary>
/// The bundled demo model through Disagg's normal path (HuggingFaceModelDirectory, ModelTokenizer, TorchModelExecutor on CPU
/// in float32), against the trainer's own evaluation (eval.json) and against HF transformers (hf_golden.json).
/// </summary>
public sealed class DemoModelTests : IClassFixture<DemoModelTests.Loaded>
{
    /// <summary>
    /// Relative difference allowed between perplexities: all three compute in float32 from the same bfloat16 weights, so
    /// only summation order differs (GPU vs CPU kernels, full windows vs paged decode attention). That moves logits by
    /// about 1e-5 and the mean log-likelihood far less (measured: 7e-8 relative to the trainer, 6e-8 to HF); 1e-5 leaves a
    /// wide margin yet catches any real difference (a wrong token, position or mask shifts perplexity by percents).
    /// </summary>
    private const double PerplexityTolerance = 1e-5;

    /// <summary>Max |Disagg - HF| over the whole vocabulary: float32 on both sides, summation order only (measured up to 1e-5).</summary>
    private const float LogitTolerance = 1e-4f;

    private readonly Loaded _model;

    public DemoModelTests(Loaded model) => _model = model;

    /// <summary>The model, its tokenizer and its references, loaded once for the class.</summary>
    public sealed class Loaded : IDisposable
    {
        internal DemoModelFiles.Evaluation Evaluation { get; } = DemoModelFiles.LoadEvaluation();
        internal DemoModelFiles.HfGolden Golden { get; } = DemoModelFiles.LoadHfGolden();
        internal ModelTokenizer Tokenizer { get; } = ModelTokenizer.Load(DemoModelFiles.Directory);
        internal TorchModelExecutor Executor { get; }

        public Loaded()
        {
            int blocks = TeacherForcedPerplexity.BlocksNeeded(Evaluation.Tokens, Evaluation.ContextLength, blockSize: 16);
            Executor = TorchModelExecutor.Load(DemoModelFiles.Directory, new ModelRunnerOptions { Device = "cpu", DataType = "float32", BlockSize = 16, KvCacheBlocks = blocks });
        }

        public void Dispose() => Executor.Dispose();
    }

    [Fact]
    public void The_bundled_checkpoint_is_a_small_llama_stored_in_bfloat16()
    {
        var directory = HuggingFaceModelDirectory.Open(DemoModelFiles.Directory);
        Assert.Equal(ModelArchitecture.Llama, directory.Config.Architecture);
        using var checkpoint = directory.OpenValidatedCheckpoint();
        long parameters = 0;
        foreach (var expected in directory.ExpectedTensors)
        {
            Assert.True(checkpoint.TryGetTensor(expected.Name, out var tensor));
            Assert.Equal(TensorDataType.BFloat16, tensor.DataType);
            parameters += expected.Shape.Aggregate(1L, (a, b) => a * b);
        }
        Assert.InRange(parameters, 1_000_000, 30_000_000);
        Assert.InRange(new FileInfo(directory.WeightFiles[0]).Length, 1, 25L << 20);
    }

    [Fact]
    public void Held_out_text_tokenizes_as_the_trainer_and_transformers_tokenized_it()
    {
        var evaluation = _model.Evaluation;
        string text = DemoModelFiles.HeldOutText(evaluation);
        Assert.Equal(evaluation.HeldoutSha256, Sha256(text));
        var ids = _model.Tokenizer.Encode(text, addSpecialTokens: false);
        Assert.Equal(evaluation.Tokens, ids.Count);
        Assert.Equal(_model.Golden.Heldout.TokenCount, ids.Count);
        Assert.Equal(_model.Golden.Heldout.IdsSha256, Sha256(string.Join(',', ids)));
        Assert.True(_model.Golden.Heldout.DecodesToText);
        Assert.Equal(text, _model.Tokenizer.Decode(ids));
    }

    [Fact]
    public void Held_out_perplexity_through_the_engine_path_matches_the_trainer_and_transformers()
    {
        var evaluation = _model.Evaluation;
        Assert.Equal(evaluation.ContextLength, evaluation.Stride); // the windows this harness computes
        var ids = _model.Tokenizer.Encode(DemoModelFiles.HeldOutText(evaluation), addSpecialTokens: false);
        var result = TeacherForcedPerplexity.Run(_model.Executor, ids, evaluation.ContextLength);

        Assert.Equal(0, result.LeakedBlocks);
        Assert.Equal(evaluation.Windows, result.Windows);
        Assert.Equal(evaluation.PredictedTokens, result.PredictedTokens);
        Assert.Equal(_model.Golden.Heldout.PredictedTokens, result.PredictedTokens);
        AssertClose(evaluation.Perplexity, result.Perplexity, "the trainer's evaluation");
        AssertClose(_model.Golden.Heldout.Perplexity, result.Perplexity, "HF transformers");
    }

    [Fact]
    public void Prompts_render_and_tokenize_as_transformers_does()
    {
        foreach (var prompt in _model.Golden.Prompts)
        {
            if (prompt.Messages is { } messages)
                Assert.Equal(prompt.Text, _model.Tokenizer.ChatTemplate.Render([.. messages.Select(m => new ChatTurn(m.Role, m.Content))], addGenerationPrompt: true));
            Assert.Equal(prompt.Ids, _model.Tokenizer.Encode(prompt.Text, addSpecialTokens: false));
        }
    }

    [Fact]
    public void Last_position_logits_match_transformers()
    {
        foreach (var prompt in _model.Golden.Prompts)
        {
            var run = PrefillHarness.Run(_model.Executor, prompt.Ids, maxBatchedTokens: 4096, prefixCache: false);
            Assert.Equal(0, run.LeakedBlocks);
            Assert.Equal(prompt.LastLogits.Length, run.Cold.Length);
            float diff = prompt.LastLogits.Zip(run.Cold).Max(p => MathF.Abs(p.First - p.Second));
            Assert.True(diff <= LogitTolerance, $"'{prompt.Text}': max |diff| {diff}");
        }
    }

    [Fact]
    public async Task Greedy_answers_match_transformers_and_stop_where_transformers_stops()
    {
        var golden = _model.Golden;
        int imEnd = _model.Tokenizer.TokenToId("<|im_end|>")!.Value;
        Assert.Equal(golden.EndTokenIds.Order(), _model.Tokenizer.EndOfSequenceTokenIds.Append(_model.Tokenizer.TokenToId("<|endoftext|>")!.Value).Order());
        // At least one chat answer of the reference ends its turn, so stopping at <|im_end|> is exercised.
        Assert.Contains(golden.Prompts, p => p.Kind == "chat" && p.Greedy[^1] == imEnd);

        await using var engine = NewEngine();
        var generator = new TextGenerator(engine, _model.Tokenizer.AsTextTokenizer(skipSpecialTokens: true));
        foreach (var prompt in golden.Prompts)
        {
            var answer = await Generate(generator, prompt.Ids, SamplingParameters.Greedy with { MaxTokens = MaxNewTokens, StopTokenIds = golden.EndTokenIds });
            Assert.Equal(prompt.Greedy, answer.Ids);
            Assert.Equal(prompt.GreedyText, answer.Text);
            bool stopped = golden.EndTokenIds.Contains(prompt.Greedy[^1]);
            Assert.Equal(stopped ? FinishReason.StopToken : FinishReason.MaxTokens, answer.Finish);
        }
    }

    /// <summary>
    /// The chat sample's default: sampling at temperature 0.7 with the tokenizer's end tokens. The model was trained to end
    /// its turn, so each sampled answer (seeded, so the run is repeatable) ends at &lt;|im_end|&gt; well before the limit,
    /// and the streamed text holds no special-token text.
    /// </summary>
    [Theory]
    [InlineData("What does John 3:16 say?", 1UL)]
    [InlineData("Tell me about Genesis 1.", 2UL)]
    [InlineData("Hello", 3UL)]
    public async Task A_sampled_chat_answer_ends_its_turn(string question, ulong seed)
    {
        var tokenizer = _model.Tokenizer;
        string prompt = tokenizer.ChatTemplate.Render([new ChatTurn("user", question)], addGenerationPrompt: true);
        await using var engine = NewEngine();
        var generator = new TextGenerator(engine, tokenizer.AsTextTokenizer(skipSpecialTokens: true));
        var sampling = new SamplingParameters { Temperature = 0.7f, Seed = seed, MaxTokens = 256, StopTokenIds = tokenizer.EndOfSequenceTokenIds };
        var answer = await Generate(generator, [.. tokenizer.Encode(prompt, addSpecialTokens: false)], sampling);

        Assert.Equal(FinishReason.StopToken, answer.Finish);
        Assert.Equal(tokenizer.TokenToId("<|im_end|>"), answer.Ids[^1]);
        Assert.True(answer.Text.Trim().Length > 0, "the answer is empty");
        Assert.DoesNotContain("<|", answer.Text, StringComparison.Ordinal);
    }

    private const int MaxNewTokens = 48; // as hf_golden.py generates

    /// <summary>An engine of its own: it owns (and disposes) its executor.</summary>
    private static LlmEngine NewEngine() =>
        new(TorchModelExecutor.Load(DemoModelFiles.Directory, new ModelRunnerOptions { Device = "cpu", DataType = "float32", KvCacheBlocks = 64 }));

    private static async Task<(List<int> Ids, string Text, FinishReason? Finish)> Generate(TextGenerator generator, int[] prompt, SamplingParameters sampling)
    {
        var ids = new List<int>();
        var text = new StringBuilder();
        FinishReason? finish = null;
        await foreach (var chunk in generator.GenerateAsync(new InferenceRequest(prompt, sampling)))
        {
            ids.Add(chunk.Token.TokenId);
            text.Append(chunk.Text);
            finish = chunk.Finish ?? finish;
        }
        return (ids, text.ToString(), finish);
    }

    private static void AssertClose(double expected, double actual, string reference) =>
        Assert.True(Math.Abs(actual / expected - 1) <= PerplexityTolerance, $"perplexity {actual} through Disagg, {expected} from {reference}");

    private static string Sha256(string text) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));
}
