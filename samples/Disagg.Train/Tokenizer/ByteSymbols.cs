namespace Disagg.Train.Tokenizer;

/// <summary>
/// The byte-to-character table of byte-level BPE (as GPT-2 defined it, and as HF tokenizers' ByteLevel reads it): the
/// printable bytes '!'..'~', '¡'..'¬' and '®'..'ÿ' stand for themselves; the other 68 bytes take the characters from
/// U+0100 upwards, in byte order (so a space is written 'Ġ', U+0120).
/// </summary>
internal static class ByteSymbols
{
    private static readonly string[] Table = Build();

    /// <summary>The one-character string that stands for <paramref name="value"/> in vocabulary and merge entries.</summary>
    public static string Of(byte value) => Table[value];

    /// <summary>A byte sequence written as vocabulary text.</summary>
    public static string Of(ReadOnlySpan<byte> bytes)
    {
        var chars = new char[bytes.Length];
        for (int i = 0; i < bytes.Length; i++) chars[i] = Table[bytes[i]][0];
        return new string(chars);
    }

    private static string[] Build()
    {
        var table = new string[256];
        int next = 0x100;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = ((char)(printable ? b : next++)).ToString();
        }
        return table;
    }
}
