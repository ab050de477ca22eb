using FsCheck;
using FsCheck.Fluent;

namespace Disagg.Chat.Tests;

/// <summary>The --tls* command line: the transport settings it makes on each side, and the mistakes it refuses.</summary>
public sealed class TlsArgumentsTests : IDisposable
{
    private static readonly string[] Chat = ["--mode", "disaggregated", "--transport", "tcp"];
    private static readonly string[] Worker = ["--serve-decode", "--endpoint", "tcp:127.0.0.1:5000"];

    private readonly CertificateFolder _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void Without_tls_neither_side_gets_tls_settings()
    {
        var chat = ChatOptions.Parse(Chat);
        Assert.False(chat.Tls.Enabled);
        Assert.Null(ChatTls.ForClient(chat.Tls, handedOverThumbprint: null));
        Assert.Null(ChatTls.ForWorker(ChatOptions.Parse(Worker).Tls));
    }

    [Fact]
    public void The_chat_trusts_the_system_roots_by_default_and_expects_the_endpoint_address()
    {
        var tls = ChatTls.ForClient(ChatOptions.Parse([.. Chat, "--tls"]).Tls, handedOverThumbprint: null)!;
        Assert.Empty(tls.PinnedThumbprints!);
        Assert.Null(tls.TrustedCertificateAuthorities);
        Assert.Null(tls.RemoteCertificateValidation);
        Assert.Null(tls.TargetHost); // the transport then uses the endpoint's address
        Assert.Null(tls.ClientCertificate);
    }

    [Fact]
    public void Pins_and_the_host_name_reach_the_chat_settings_along_with_the_handed_over_certificate()
    {
        using var other = new CertificateFolder("other.test");
        string colonsLowerCase = string.Join(':', Convert.FromHexString(other.Thumbprint).Select(b => b.ToString("x2", null)));
        var options = ChatOptions.Parse([.. Chat, "--tls", "--tls-pin", _files.Thumbprint, "--tls-pin", colonsLowerCase, "--tls-host", "decode.test"]);

        var tls = ChatTls.ForClient(options.Tls, handedOverThumbprint: "AB".PadRight(64, '0'))!;

        Assert.Equal([_files.Thumbprint, other.Thumbprint, "AB".PadRight(64, '0')], tls.PinnedThumbprints);
        Assert.Equal("decode.test", tls.TargetHost);
    }

    [Fact]
    public void The_worker_presents_its_pkcs12_certificate_with_its_key()
    {
        var options = ChatOptions.Parse([.. Worker, "--tls", "--tls-cert", _files.Pkcs12, "--tls-password", CertificateFolder.Password]);

        var tls = ChatTls.ForWorker(options.Tls)!;

        using var certificate = tls.ServerCertificate!;
        Assert.True(certificate.HasPrivateKey);
        Assert.Equal(_files.Thumbprint, ChatTls.Thumbprint(certificate));
        Assert.Null(tls.PinnedThumbprints);
    }

    [Fact]
    public void The_worker_presents_a_pem_certificate_with_its_key_file()
    {
        var options = ChatOptions.Parse([.. Worker, "--tls", "--tls-cert", _files.CertificatePem, "--tls-key", _files.KeyPem]);

        using var certificate = ChatTls.ForWorker(options.Tls)!.ServerCertificate!;

        Assert.True(certificate.HasPrivateKey);
        Assert.Equal(_files.Thumbprint, ChatTls.Thumbprint(certificate));
    }

    [Fact]
    public void A_certificate_without_its_private_key_is_refused_by_name()
    {
        var options = ChatOptions.Parse([.. Worker, "--tls", "--tls-cert", _files.PublicOnlyPkcs12, "--tls-password", CertificateFolder.Password]);

        var error = Assert.Throws<UsageException>(() => ChatTls.ForWorker(options.Tls));

        Assert.Contains(_files.PublicOnlyPkcs12, error.Message, StringComparison.Ordinal);
        Assert.Contains("no private key", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pem_certificate_without_its_key_or_a_wrong_password_says_it_could_not_be_loaded()
    {
        var pemAlone = ChatOptions.Parse([.. Worker, "--tls", "--tls-cert", _files.CertificatePem]);
        var wrongPassword = ChatOptions.Parse([.. Worker, "--tls", "--tls-cert", _files.Pkcs12, "--tls-password", "wrong"]);

        foreach (var options in new[] { pemAlone, wrongPassword })
        {
            var error = Assert.Throws<UsageException>(() => ChatTls.ForWorker(options.Tls));
            Assert.Contains($"--tls-cert '{options.Tls.CertificatePath}' could not be loaded", error.Message, StringComparison.Ordinal);
        }
    }

    public static TheoryData<string[], string> Mistakes()
    {
        string[] chatTls = [.. Chat, "--tls"];
        return new TheoryData<string[], string>
        {
            { ["--mode", "disaggregated", "--transport", "unix", "--tls"], "--tls is for TCP" },
            { [.. Chat, "--endpoint", "unix:/tmp/decode.sock", "--tls"], "--tls is for TCP" },
            { ["--serve-decode", "--endpoint", "unix:/tmp/decode.sock", "--tls", "--tls-cert", "{cert}"], "--tls is for TCP" },
            { ["--tls"], "--tls needs --mode disaggregated --transport tcp" },
            { ["--mode", "disaggregated", "--tls"], "--tls needs --mode disaggregated --transport tcp" },
            { [.. Chat, "--tls-pin", "{pin}"], "--tls-pin needs --tls" },
            { [.. Worker, "--tls-cert", "{cert}"], "--tls-cert needs --tls" },
            { [.. chatTls, "--tls-host", "decode.test", "--tls-key", "{key}"], "--tls-key needs --tls-cert" },
            { [.. chatTls, "--tls-password", "secret"], "--tls-password needs --tls-cert" },
            { [.. chatTls, "--tls-cert", "{missing}"], "--tls-cert '{missing}' does not exist" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-key", "{missing}"], "--tls-key '{missing}' does not exist" },
            { [.. chatTls, "--tls-pin", "{pin}0"], "is not a SHA-256 certificate thumbprint" },
            { [.. chatTls, "--tls-pin", "sha256:{pin}"], "is not a SHA-256 certificate thumbprint" },
            { [.. chatTls, "--tls-host", "not a host"], "--tls-host 'not a host' is not a host name" },
            { [.. Worker, "--tls"], "--serve-decode --tls needs --tls-cert" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-pin", "{pin}"], "--tls-pin and --tls-host are for the chat" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-host", "decode.test"], "--tls-pin and --tls-host are for the chat" },
            { [.. Chat, "--attach", "--endpoint", "tcp:127.0.0.1:5000", "--tls", "--tls-cert", "{cert}"], "--tls-cert with --attach" },
            { [.. Chat, "--tls-host"], "--tls-host needs a value" },
        };
    }

    [Theory]
    [MemberData(nameof(Mistakes))]
    public void Mistakes_are_refused_with_a_message_naming_them(string[] args, string expected)
    {
        string Fill(string text) => text.Replace("{cert}", _files.Pkcs12, StringComparison.Ordinal)
            .Replace("{key}", _files.KeyPem, StringComparison.Ordinal)
            .Replace("{missing}", _files.Missing, StringComparison.Ordinal)
            .Replace("{pin}", _files.Thumbprint, StringComparison.Ordinal);

        var error = Assert.Throws<UsageException>(() => ChatOptions.Parse([.. args.Select(Fill)]));

        Assert.Contains(Fill(expected), error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_pin_is_any_32_bytes_of_hex_in_either_case_with_or_without_colons()
    {
        var styles = Gen.Elements(0, 1, 2, 3);
        Check(Prop.ForAll(ThumbprintBytes.ToArbitrary(), styles.ToArbitrary(), (bytes, style) =>
        {
            string hex = Convert.ToHexString(bytes);
            string written = style switch
            {
                0 => hex,
                1 => hex.ToLowerInvariant(),
                2 => string.Join(':', bytes.Select(b => b.ToString("X2", null))),
                _ => string.Join(':', bytes.Select(b => b.ToString("x2", null))),
            };
            return TlsFlags.Thumbprint(written) == hex;
        }));
    }

    [Fact]
    public void Anything_but_32_bytes_of_hex_is_not_a_pin()
    {
        var hexDigit = Gen.Elements("0123456789abcdefABCDEF".ToCharArray());
        var wrongLength = Gen.Choose(0, 100).Where(n => n != 64).SelectMany(n => hexDigit.ArrayOf(n)).Select(c => new string(c));
        var oneBadCharacter =
            from bytes in ThumbprintBytes
            from at in Gen.Choose(0, 63)
            from bad in Gen.Elements('g', 'z', 'G', ' ', '-', '/', 'é', '０')
            select Convert.ToHexString(bytes).Remove(at, 1).Insert(at, bad.ToString());
        Check(Prop.ForAll(Gen.OneOf(wrongLength, oneBadCharacter).ToArbitrary(), text =>
            Assert.Throws<UsageException>(() => TlsFlags.Thumbprint(text)).Message.Contains("64 hex digits", StringComparison.Ordinal)));
    }

    private static Gen<byte[]> ThumbprintBytes => Gen.Choose(0, 255).Select(b => (byte)b).ArrayOf(32);

    private static void Check(Property property) => property.Check(Config.QuickThrowOnFailure.WithMaxTest(300));
}
