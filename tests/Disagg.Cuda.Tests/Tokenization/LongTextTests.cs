using Disagg.Tokenization;
using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Cuda.Tests.Tokenization;

/// <summary>
/// SentencePiece-style text is one BPE word; long words are merged in pieces cut at runs of "▁". These check that
/// the cut changes nothing against merging the whole word at once with the inner Microsoft.ML.Tokenizers BPE.
/// </summary>
public sealed class LongTextTests
{
    [Theory]
    [InlineData("llama2")]
    [InlineData("mistral")]
    public void Long_text_encodes_as_if_merged_whole(string name)
    {
        var tokenizer = ModelTokenizer.Load(FixtureModels.Directory_(name));
        // Characters that are themselves in the vocabulary, so no byte fallback is involved.
        char[] alphabet = " abcdefghijklmnopqrstuvwxyz  ,.".Where(c => c == ' ' || tokenizer.TokenToId(c.ToString()) is not null).ToArray();
        var text = Gen.Elements(alphabet).ArrayOf().Where(a => a.Length > 100).Select(a => new string(a));
        Prop.ForAll(text.ToArbitrary(), t =>
        {
            var whole = tokenizer.Inner.EncodeToIds("\u2581" + t.Replace(' ', '\u2581'), considerPreTokenization: false, considerNormalization: false);
            return whole.SequenceEqual(tokenizer.Encode(t, addSpecialTokens: false));
        }).Check(Config.QuickThrowOnFailure.WithMaxTest(100).WithEndSize(400));
    }
}
