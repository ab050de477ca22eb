using System.Buffers;
using System.Text;

namespace Disagg.Tokenization;

/// <summary>
/// HF <c>ByteLevel</c> pre-tokenizer: optionally prefixes a space and splits with the GPT-2 regex, then rewrites each
/// piece as its UTF-8 bytes in the <see cref="ByteLevelAlphabet"/> so that the BPE vocabulary (which is made of such
/// strings) can be applied.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizerStep
{
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
    private static readonly Lazy<CodePointRegex> s_gpt2 = new(() => new CodePointRegex(Gpt2Pattern));

    public override void Process(ReadOnlySpan<char> piece, bool atTextStart, PreTokenizedSink sink, int nextStep)
    {
        if (addPrefixSpace && piece[0] != ' ')
        {
            char[] rented = ArrayPool<char>.Shared.Rent(piece.Length + 1);
            rented[0] = ' ';
            piece.CopyTo(rented.AsSpan(1));
            SplitAndMap(rented.AsSpan(0, piece.Length + 1), atTextStart, sink, nextStep);
            ArrayPool<char>.Shared.Return(rented);
        }
        else
        {
            SplitAndMap(piece, atTextStart, sink, nextStep);
        }
    }

    private void SplitAndMap(ReadOnlySpan<char> piece, bool atTextStart, PreTokenizedSink sink, int nextStep)
    {
        if (!useRegex)
        {
            Map(piece, atTextStart, sink, nextStep);
            return;
        }
        var pieces = new List<(int Start, int Length)>();
        s_gpt2.Value.SplitIsolated(piece, pieces);
        foreach (var (start, length) in pieces) Map(piece.Slice(start, length), atTextStart && start == 0, sink, nextStep);
    }

    private static void Map(ReadOnlySpan<char> piece, bool atTextStart, PreTokenizedSink sink, int nextStep)
    {
        int maxBytes = Encoding.UTF8.GetMaxByteCount(piece.Length);
        byte[]? rentedBytes = null;
        char[]? rentedChars = null;
        Span<byte> bytes = maxBytes <= 512 ? stackalloc byte[512] : (rentedBytes = ArrayPool<byte>.Shared.Rent(maxBytes));
        Span<char> chars = maxBytes <= 512 ? stackalloc char[512] : (rentedChars = ArrayPool<char>.Shared.Rent(maxBytes));
        int count = Encoding.UTF8.GetBytes(piece, bytes);
        ByteLevelAlphabet.Map(bytes[..count], chars);
        sink.Continue(chars[..count], atTextStart, nextStep);
        if (rentedBytes is not null) ArrayPool<byte>.Shared.Return(rentedBytes);
        if (rentedChars is not null) ArrayPool<char>.Shared.Return(rentedChars);
    }
}
