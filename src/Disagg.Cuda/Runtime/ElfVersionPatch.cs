using System.Buffers.Binary;
using System.Text;

namespace Disagg.Cuda.Runtime;

/// <summary>
/// Relaxes one symbol-version requirement of an ELF64 little-endian shared library, in memory: the version need named
/// <c>version</c> is marked weak (so the dynamic loader no longer refuses the library when the runtime lacks that version)
/// and every dynamic symbol bound to that version is made unversioned (so it binds to whatever library provides it).
/// </summary>
/// <remarks>
/// This is the fix for TorchSharp 0.107's <c>libLibTorchSharp.so</c>, which needs <c>GLIBCXX_3.4.32</c> for the single
/// symbol <c>std::ios_base_library_init()</c>. Only two fields change: one <c>vna_flags</c> and one <c>.gnu.version</c> entry per
/// symbol. Every offset read is bounds-checked; a malformed file gets an <see cref="InvalidDataException"/>.
/// </remarks>
internal static class ElfVersionPatch
{
    private const uint ShtDynsym = 11, ShtGnuVersym = 0x6fffffff, ShtGnuVerneed = 0x6ffffffe;
    private const ushort VerFlagWeak = 0x2, VerNdxGlobal = 1;

    /// <summary>What a library asks of one symbol version.</summary>
    /// <param name="Found">The library needs this version at all.</param>
    /// <param name="AlreadyWeak">The need is already weak (patched before).</param>
    /// <param name="Symbols">The dynamic symbols still bound to this version.</param>
    internal readonly record struct VersionNeed(bool Found, bool AlreadyWeak, IReadOnlyList<string> Symbols);

    /// <summary>Reports what <paramref name="elf"/> needs of <paramref name="version"/>.</summary>
    public static VersionNeed Inspect(ReadOnlySpan<byte> elf, string version)
    {
        var file = Parse(elf);
        if (!TryFindNeed(elf, file, version, out int auxOffset, out ushort index)) return new VersionNeed(false, false, []);
        bool weak = (U16(elf, auxOffset + 4) & VerFlagWeak) != 0;
        var symbols = new List<string>();
        foreach (int sym in SymbolsWithVersion(elf, file, index))
            symbols.Add(SymbolName(elf, file, sym));
        return new VersionNeed(true, weak, symbols);
    }

    /// <summary>
    /// Marks the need for <paramref name="version"/> weak and unversions its symbols, in place. Only symbols named in
    /// <paramref name="allowedSymbols"/> may be bound to it: if any other is, nothing changes and an
    /// <see cref="InvalidDataException"/> says which (relaxing a version that real code depends on would only move the failure).
    /// Returns false when the library does not need that version.
    /// </summary>
    public static bool Relax(Span<byte> elf, string version, IReadOnlySet<string> allowedSymbols)
    {
        var file = Parse(elf);
        if (!TryFindNeed(elf, file, version, out int auxOffset, out ushort index)) return false;
        var symbols = SymbolsWithVersion(elf, file, index).ToList();
        foreach (int sym in symbols)
        {
            string name = SymbolName(elf, file, sym);
            if (!allowedSymbols.Contains(name))
                throw new InvalidDataException($"Symbol '{name}' also needs {version}; relaxing it is not safe.");
        }
        BinaryPrimitives.WriteUInt16LittleEndian(elf[(auxOffset + 4)..], (ushort)(U16(elf, auxOffset + 4) | VerFlagWeak));
        foreach (int sym in symbols)
            BinaryPrimitives.WriteUInt16LittleEndian(elf[(file.Versym.Offset + 2 * sym)..], VerNdxGlobal);
        return true;
    }

    private readonly record struct Section(int Offset, int Size, int Link, int Info, int EntrySize);

    private readonly record struct ElfFile(Section Dynsym, Section Dynstr, Section Versym, Section Verneed, Section VerneedStrings);

    private static ElfFile Parse(ReadOnlySpan<byte> elf)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
            throw new InvalidDataException("Not an ELF file.");
        if (elf[4] != 2 || elf[5] != 1) throw new InvalidDataException("Only 64-bit little-endian ELF files are supported.");
        long shoff = (long)U64(elf, 0x28);
        int shentsize = U16(elf, 0x3A), shnum = U16(elf, 0x3C);
        if (shentsize < 64 || shnum == 0 || shoff <= 0 || shoff + (long)shentsize * shnum > elf.Length)
            throw new InvalidDataException("The section header table is missing or out of bounds.");

        var sections = new Section[shnum];
        var types = new uint[shnum];
        for (int i = 0; i < shnum; i++)
        {
            int h = checked((int)(shoff + (long)i * shentsize));
            types[i] = U32(elf, h + 4);
            ulong offset = U64(elf, h + 24), size = U64(elf, h + 32);
            if (types[i] != 8 /* SHT_NOBITS */ && offset + size > (ulong)elf.Length)
                throw new InvalidDataException($"Section {i} lies outside the file.");
            sections[i] = new Section((int)offset, (int)size, (int)U32(elf, h + 40), (int)U32(elf, h + 44), (int)U64(elf, h + 56));
        }

        Section Find(uint type, string what)
        {
            int at = Array.IndexOf(types, type);
            return at >= 0 ? sections[at] : throw new InvalidDataException($"The file has no {what} section.");
        }
        Section Linked(Section s, string what) =>
            s.Link > 0 && s.Link < shnum && types[s.Link] == 3 /* SHT_STRTAB */
                ? sections[s.Link]
                : throw new InvalidDataException($"The {what} section links to no string table.");

        var dynsym = Find(ShtDynsym, ".dynsym");
        var verneed = Find(ShtGnuVerneed, ".gnu.version_r");
        var versym = Find(ShtGnuVersym, ".gnu.version");
        if (dynsym.EntrySize != 24) throw new InvalidDataException(".dynsym entries are not 24 bytes.");
        if (versym.Size / 2 != dynsym.Size / 24) throw new InvalidDataException(".gnu.version does not match .dynsym.");
        return new ElfFile(dynsym, Linked(dynsym, ".dynsym"), versym, verneed, Linked(verneed, ".gnu.version_r"));
    }

    private static bool TryFindNeed(ReadOnlySpan<byte> elf, ElfFile file, string version, out int auxOffset, out ushort index)
    {
        int need = file.Verneed.Offset, end = file.Verneed.Offset + file.Verneed.Size;
        for (int n = 0; n < file.Verneed.Info; n++)
        {
            Check(need, 16, end);
            int count = U16(elf, need + 2);
            int aux = need + (int)U32(elf, need + 8);
            for (int a = 0; a < count; a++)
            {
                Check(aux, 16, end);
                if (CString(elf, file.VerneedStrings, U32(elf, aux + 8)) == version)
                {
                    auxOffset = aux;
                    index = (ushort)(U16(elf, aux + 6) & 0x7fff);
                    return true;
                }
                uint nextAux = U32(elf, aux + 12);
                if (nextAux == 0) break;
                aux += (int)nextAux;
            }
            uint next = U32(elf, need + 12);
            if (next == 0) break;
            need += (int)next;
        }
        auxOffset = 0;
        index = 0;
        return false;
    }

    private static IEnumerable<int> SymbolsWithVersion(ReadOnlySpan<byte> elf, ElfFile file, ushort index)
    {
        var found = new List<int>();
        int count = file.Dynsym.Size / 24;
        for (int i = 0; i < count; i++)
            if ((U16(elf, file.Versym.Offset + 2 * i) & 0x7fff) == index) found.Add(i);
        return found;
    }

    private static string SymbolName(ReadOnlySpan<byte> elf, ElfFile file, int symbol) =>
        CString(elf, file.Dynstr, U32(elf, file.Dynsym.Offset + 24 * symbol));

    private static string CString(ReadOnlySpan<byte> elf, Section table, uint offset)
    {
        if (offset >= (uint)table.Size) throw new InvalidDataException("A name lies outside its string table.");
        var s = elf.Slice(table.Offset + (int)offset, table.Size - (int)offset);
        int nul = s.IndexOf((byte)0);
        if (nul < 0) throw new InvalidDataException("A name in a string table is not terminated.");
        return Encoding.UTF8.GetString(s[..nul]);
    }

    private static void Check(int offset, int size, int end)
    {
        if (offset < 0 || offset + size > end) throw new InvalidDataException(".gnu.version_r entries run outside their section.");
    }

    private static ushort U16(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt16LittleEndian(Slice(b, at, 2));

    private static uint U32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(Slice(b, at, 4));

    private static ulong U64(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(Slice(b, at, 8));

    private static ReadOnlySpan<byte> Slice(ReadOnlySpan<byte> b, int at, int size) =>
        at >= 0 && at <= b.Length - size ? b.Slice(at, size) : throw new InvalidDataException($"Offset {at} lies outside the file.");
}
