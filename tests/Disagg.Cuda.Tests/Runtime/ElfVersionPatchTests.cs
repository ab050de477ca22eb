using Disagg.Cuda.Runtime;
using FsCheck.Xunit;

namespace Disagg.Cuda.Tests.Runtime;

/// <summary>The patcher against the real TorchSharp library shipped in the restored packages.</summary>
public class ElfVersionPatchTests
{
    private const string Version = "GLIBCXX_3.4.32", Symbol = "_ZSt21ios_base_library_initv";
    private static readonly Lazy<byte[]> Original = new(() =>
        File.ReadAllBytes(TorchRuntime.FindNative("libLibTorchSharp.so") ?? throw new InvalidOperationException("libLibTorchSharp.so not restored")));

    [Fact]
    public void TorchSharp_needs_the_version_for_exactly_one_symbol()
    {
        var need = ElfVersionPatch.Inspect(Original.Value, Version);
        Assert.True(need.Found);
        Assert.False(need.AlreadyWeak);
        Assert.Equal([Symbol], need.Symbols);
        Assert.False(ElfVersionPatch.Inspect(Original.Value, "GLIBCXX_99.0").Found);
    }

    [Fact]
    public void Relaxing_changes_two_small_fields_and_nothing_else()
    {
        var patched = (byte[])Original.Value.Clone();
        Assert.True(ElfVersionPatch.Relax(patched, Version, new HashSet<string> { Symbol }));

        var after = ElfVersionPatch.Inspect(patched, Version);
        Assert.True(after.AlreadyWeak);
        Assert.Empty(after.Symbols);
        int changedBytes = patched.Zip(Original.Value).Count(p => p.First != p.Second);
        Assert.InRange(changedBytes, 2, 4); // one flag byte, one or two bytes of one version index
        Assert.Equal(Original.Value.Length, patched.Length);
    }

    [Fact]
    public void Relaxing_refuses_when_another_symbol_depends_on_the_version()
    {
        var copy = (byte[])Original.Value.Clone();
        var error = Assert.Throws<InvalidDataException>(() => ElfVersionPatch.Relax(copy, Version, new HashSet<string>()));
        Assert.Contains(Symbol, error.Message);
        Assert.Equal(Original.Value, copy);
    }

    [Fact]
    public void Non_elf_input_gets_a_typed_error()
    {
        Assert.Throws<InvalidDataException>(() => ElfVersionPatch.Inspect([], Version));
        Assert.Throws<InvalidDataException>(() => ElfVersionPatch.Inspect("#!/bin/sh\necho not a library\n"u8.ToArray(), Version));
    }

    /// <summary>Truncated or corrupted libraries never crash the patcher with anything but <see cref="InvalidDataException"/>.</summary>
    [Property(MaxTest = 200)]
    public void Corrupted_libraries_fail_with_nothing_but_a_typed_error(int cut, int[] flips)
    {
        var bytes = Original.Value;
        var damaged = bytes.AsSpan(0, (int)((uint)cut % (uint)bytes.Length)).ToArray();
        if (damaged.Length == 0) damaged = (byte[])bytes.Clone();
        foreach (int f in flips ?? []) damaged[(int)((uint)f % (uint)damaged.Length)] ^= (byte)(f >> 8 | 1);
        try
        {
            ElfVersionPatch.Inspect(damaged, Version);
        }
        catch (InvalidDataException)
        {
        }
    }
}
