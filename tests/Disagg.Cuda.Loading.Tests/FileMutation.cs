using System.Text;
using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Cuda.Loading.Tests;

/// <summary>
/// One corruption of a file's bytes, as FsCheck generates and shrinks it: a flipped bit, a byte replaced by a JSON-significant
/// character, a truncation, a deletion, an insertion, a repeated slice, or a number replaced by a huge one.
/// </summary>
public sealed record FileMutation(int Kind, int Position, int Length, byte Value)
{
    private static readonly byte[] s_json = Encoding.ASCII.GetBytes("{}[]\",:0123456789-+eE. \\ntfu");
    private static readonly byte[][] s_numbers = [.. new[] { "99999999999999999999", "2147483648", "-1", "1e308", "0", "-2147483649" }.Select(Encoding.ASCII.GetBytes)];

    public static Arbitrary<FileMutation> Arbitrary() =>
        (from kind in Gen.Choose(0, 6)
         from position in ArbMap.Default.GeneratorFor<NonNegativeInt>()
         from length in Gen.Choose(1, 64)
         from value in ArbMap.Default.GeneratorFor<byte>()
         select new FileMutation(kind, position.Get, length, value)).ToArbitrary();

    public override string ToString() => $"mutation kind {Kind} at {Position}, length {Length}, value {Value}";

    /// <summary>Applies the mutation within [0, <paramref name="structuredEnd"/>) of <paramref name="valid"/> (where parsing happens).</summary>
    public byte[] Apply(byte[] valid, int structuredEnd = int.MaxValue)
    {
        int end = Math.Max(1, Math.Min(structuredEnd, valid.Length));
        int at = Position % end;
        switch (Kind)
        {
            case 0:
                var flipped = (byte[])valid.Clone();
                flipped[at] ^= (byte)(1 << (Value % 8));
                return flipped;
            case 1:
                var replaced = (byte[])valid.Clone();
                replaced[at] = s_json[Value % s_json.Length];
                return replaced;
            case 2:
                return valid[..at];
            case 3:
                return [.. valid[..at], .. valid[Math.Min(valid.Length, at + Length)..]];
            case 4:
                return [.. valid[..at], .. Enumerable.Range(0, Length % 8 + 1).Select(i => s_json[(Value + i * 7) % s_json.Length]), .. valid[at..]];
            case 5:
                var slice = valid[at..Math.Min(valid.Length, at + Length * 8)];
                return [.. valid[..at], .. slice, .. slice, .. valid[(at + slice.Length)..]];
            default:
                // A number somewhere after the position becomes a huge (or negative) one: sizes, ids, counts.
                int digit = Array.FindIndex(valid, at, end - at, b => b is >= (byte)'0' and <= (byte)'9');
                if (digit < 0) return valid;
                int stop = digit;
                while (stop < valid.Length && valid[stop] is >= (byte)'0' and <= (byte)'9') stop++;
                return [.. valid[..digit], .. s_numbers[Value % s_numbers.Length], .. valid[stop..]];
        }
    }
}

/// <summary>Runs a property with a given number of cases, throwing (with the shrunk counterexample and the seed) on failure.</summary>
internal static class PropertyChecks
{
    public static void Check(this Property property, int cases) => FsCheck.Check.One(Config.QuickThrowOnFailure.WithMaxTest(cases), property);
}
