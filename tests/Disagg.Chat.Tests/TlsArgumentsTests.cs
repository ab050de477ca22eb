using FsCheck;
using FsCheck.Fluent;
using Disagg.Transport.Tests.Tls;

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
    public void The_chat_trusts_the_authorities_of_tls_ca_and_presents_tls_client_cert()
    {
        using var first = TestCertificates.Authority("First CA");
        using var second = TestCertificates.Authority("Second CA");
        string bundle = _files.Write("bundle.pem", first.ExportCertificatePem() + "\n" + second.ExportCertificatePem());
        string der = _files.Write("second.der", second.RawData);
        var options = ChatOptions.Parse([.. Chat, "--tls", "--tls-ca", bundle, "--tls-client-cert", _files.CertificatePem, "--tls-client-key", _files.KeyPem]);

        var tls = ChatTls.ForClient(options.Tls, handedOverThumbprint: null)!;

        Assert.Equal([first.Thumbprint, second.Thumbprint], tls.TrustedCertificateAuthorities!.Select(c => c.Thumbprint));
        Assert.True(tls.ClientCertificate!.HasPrivateKey);
        Assert.Equal(_files.Thumbprint, ChatTls.Thumbprint(tls.ClientCertificate));
        var fromDer = ChatTls.ForClient(ChatOptions.Parse([.. Chat, "--tls", "--tls-ca", der]).Tls, handedOverThumbprint: null)!;
        Assert.Equal([second.Thumbprint], fromDer.TrustedCertificateAuthorities!.Select(c => c.Thumbprint));
    }

    [Fact]
    public void The_worker_requires_a_chat_certificate_only_with_tls_client_ca_or_tls_client_pin()
    {
        string[] worker = [.. Worker, "--tls", "--tls-cert", _files.Pkcs12, "--tls-password", CertificateFolder.Password];
        using var authority = TestCertificates.Authority("Chat CA");
        string ca = _files.Write("chat-ca.pem", authority.ExportCertificatePem());

        var open = ChatTls.ForWorker(ChatOptions.Parse(worker).Tls)!;
        var byAuthority = ChatTls.ForWorker(ChatOptions.Parse([.. worker, "--tls-client-ca", ca]).Tls)!;
        var byPin = ChatTls.ForWorker(ChatOptions.Parse([.. worker, "--tls-client-pin", _files.Thumbprint.ToLowerInvariant()]).Tls)!;

        Assert.False(open.RequireClientCertificate);
        Assert.True(byAuthority.RequireClientCertificate);
        Assert.Equal([authority.Thumbprint], byAuthority.TrustedCertificateAuthorities!.Select(c => c.Thumbprint));
        Assert.True(byPin.RequireClientCertificate);
        Assert.Equal([_files.Thumbprint], byPin.PinnedThumbprints);
    }

    [Fact]
    public void Files_that_hold_no_certificate_are_refused_by_flag()
    {
        string junk = _files.Write("junk.pem", "-----BEGIN NOTHING-----\nAAAA\n-----END NOTHING-----\n");
        var chat = ChatOptions.Parse([.. Chat, "--tls", "--tls-ca", junk]);
        var error = Assert.Throws<UsageException>(() => ChatTls.ForClient(chat.Tls, handedOverThumbprint: null));
        Assert.Contains($"--tls-ca '{junk}' holds no certificate authority", error.Message, StringComparison.Ordinal);

        var keyless = ChatOptions.Parse([.. Chat, "--tls", "--tls-client-cert", _files.PublicOnlyPkcs12, "--tls-password", CertificateFolder.Password]);
        error = Assert.Throws<UsageException>(() => ChatTls.ForClient(keyless.Tls, handedOverThumbprint: null));
        Assert.Contains($"--tls-client-cert '{_files.PublicOnlyPkcs12}' holds no private key (give it with --tls-client-key", error.Message, StringComparison.Ordinal);
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
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-pin", "{pin}"], "--tls-pin is for the chat" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-host", "decode.test"], "--tls-host is for the chat" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-ca", "{ca}"], "--tls-ca is for the chat" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-client-cert", "{cert}"], "--tls-client-cert is for the chat" },
            { [.. Chat, "--tls-ca", "{ca}"], "--tls-ca needs --tls" },
            { [.. Chat, "--tls-client-cert", "{cert}"], "--tls-client-cert needs --tls" },
            { [.. Worker, "--tls-client-pin", "{pin}"], "--tls-client-pin needs --tls" },
            { [.. chatTls, "--tls-client-key", "{key}"], "--tls-client-key needs --tls-client-cert" },
            { [.. chatTls, "--tls-ca", "{missing}"], "--tls-ca '{missing}' does not exist" },
            { [.. chatTls, "--tls-client-cert", "{missing}"], "--tls-client-cert '{missing}' does not exist" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-client-ca", "{missing}"], "--tls-client-ca '{missing}' does not exist" },
            { [.. chatTls, "--tls-client-ca", "{ca}"], "--tls-client-ca is for --serve-decode" },
            { [.. chatTls, "--tls-client-pin", "{pin}"], "--tls-client-pin is for --serve-decode" },
            { [.. Worker, "--tls", "--tls-cert", "{cert}", "--tls-client-pin", "{pin}0"], "--tls-client-pin '{pin}0' is not a SHA-256 certificate thumbprint" },
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
            .Replace("{pin}", _files.Thumbprint, StringComparison.Ordinal)
            .Replace("{ca}", _files.CertificatePem, StringComparison.Ordinal);

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
