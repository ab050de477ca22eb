namespace Disagg.Tokenization;

/// <summary>
/// The GPT-2 byte-level alphabet: every byte maps to one printable character so that byte strings can live in a
/// string vocabulary. Printable Latin-1 bytes map to themselves; the rest (controls, space, DEL, NBSP, soft hyphen)
/// map to U+0100 onwards in byte order, which is why a space shows up as 'Ġ' (U+0120) in these vocabularies.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] s_byteToChar = BuildByteToChar();
    private static readonly short[] s_charToByte = BuildCharToByte(s_byteToChar);

    /// <summary>The character that stands for <paramref name="value"/>.</summary>
    public static char ToChar(byte value) => s_byteToChar[value];

    /// <summary>The byte that <paramref name="c"/> stands for, or false when it is not in the alphabet.</summary>
    public static bool TryGetByte(char c, out byte value)
    {
        if (c < s_charToByte.Length && s_charToByte[c] >= 0)
        {
            value = (byte)s_charToByte[c];
            return true;
        }
        value = 0;
        return false;
    }

    /// <summary>Maps each byte of <paramref name="bytes"/> to its character in <paramref name="destination"/>.</summary>
    public static void Map(ReadOnlySpan<byte> bytes, Span<char> destination)
    {
        for (int i = 0; i < bytes.Length; i++) destination[i] = s_byteToChar[bytes[i]];
    }

    private static bool MapsToItself(int b) => b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++) map[b] = MapsToItself(b) ? (char)b : (char)next++;
        return map;
    }

    private static short[] BuildCharToByte(char[] byteToChar)
    {
        var map = new short[512];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++) map[byteToChar[b]] = (short)b;
        return map;
    }
}
