using System.Runtime.CompilerServices;
using Disagg.Kv;
using Disagg.Text;

namespace Disagg.Tests.Text;

public class TextGeneratorTests
{
    /// <summary>Token id n decodes to the n-th piece; piece 0 is empty so that some tokens release no text.</summary>
    private static readonly string[] Pieces = ["", "Hel", "lo", " wor", "ld", "!", " S", "TO", "P", " more"];

    [Fact]
    public async Task Streams_text_and_finishes_with_the_engines_reason()
    {
        var engine = new ScriptedEngine([1, 2, 0, 3, 4, 5], FinishReason.StopToken);
        var chunks = await Collect(new TextGenerator(engine, new PieceTokenizer()).GenerateAsync(Request()));
        Assert.Equal("Hello world!", string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(6, chunks.Count);
        Assert.Equal(FinishReason.StopToken, chunks[^1].Finish);
        Assert.All(chunks[..^1], c => Assert.Null(c.Finish));
    }

    [Fact]
    public async Task A_stop_string_across_tokens_ends_generation_hides_itself_and_cancels_the_request()
    {
        var engine = new ScriptedEngine([1, 2, 6, 7, 8, 9, 9, 9], FinishReason.MaxTokens);
        var request = Request();
        var chunks = await Collect(new TextGenerator(engine, new PieceTokenizer())
            .GenerateAsync(new InferenceRequest(request.PromptTokens, request.Sampling with { StopStrings = ["STOP"] })));
        Assert.Equal("Hello ", string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(FinishReason.StopString, chunks[^1].Finish);
        Assert.Equal(5, engine.Yielded);          // nothing was pulled past the stop string
        Assert.True(engine.Disposed);             // and the engine's stream was released, which cancels the request
    }

    [Fact]
    public async Task Text_that_only_looked_like_a_stop_string_is_released_at_the_end()
    {
        var engine = new ScriptedEngine([1, 2, 6, 7], FinishReason.MaxTokens);
        var request = Request();
        var chunks = await Collect(new TextGenerator(engine, new PieceTokenizer())
            .GenerateAsync(new InferenceRequest(request.PromptTokens, request.Sampling with { StopStrings = ["STOP"] })));
        Assert.Equal("Hello STO", string.Concat(chunks.Select(c => c.Text)));
        Assert.Equal(FinishReason.MaxTokens, chunks[^1].Finish);
    }

    private static InferenceRequest Request() => new(new[] { 1, 2, 3 }, SamplingParameters.Greedy);

    private static async Task<List<TextChunk>> Collect(IAsyncEnumerable<TextChunk> stream)
    {
        var list = new List<TextChunk>();
        await foreach (var c in stream) list.Add(c);
        return list;
    }

    private sealed class PieceTokenizer : ITextTokenizer
    {
        public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true) => [1];

        public IStreamingDetokenizer CreateStreamingDetokenizer() => new Detokenizer();

        private sealed class Detokenizer : IStreamingDetokenizer
        {
            public string Append(int tokenId) => Pieces[tokenId];

            public string Flush() => "";
        }
    }

    private sealed class ScriptedEngine(int[] tokens, FinishReason finish) : IInferenceEngine
    {
        public int Yielded { get; private set; }

        public bool Disposed { get; private set; }

        public KvCacheLayout KvLayout { get; } = new(1, 1, 1, 16, KvDataType.Float32);

        public int MaxContextLength => 1024;

        public EngineLoad GetLoad() => default;

        public async IAsyncEnumerable<GeneratedToken> GenerateAsync(InferenceRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            try
            {
                for (int i = 0; i < tokens.Length; i++)
                {
                    await Task.Yield();
                    Yielded++;
                    yield return new GeneratedToken(tokens[i], i, 0, i == tokens.Length - 1 ? finish : null);
                }
            }
            finally
            {
                Disposed = true;
            }
        }
    }
}
