using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Chat.Tests;

/// <summary>The certificate the chat hands to a decode worker it starts with --tls: a throwaway one, or --tls-cert.</summary>
public sealed class WorkerCertificateHandoverTests
{
    private static readonly string[] Chat = ["--mode", "disaggregated", "--transport", "tcp", "--tls"];

    [Fact]
    public void A_throwaway_certificate_goes_in_an_owner_only_pkcs12_file_that_dispose_deletes()
    {
        var flags = ChatOptions.Parse(Chat).Tls;
        string file;
        using (var handover = WorkerCertificateHandover.Prepare(flags, "127.0.0.1"))
        {
            Assert.True(handover.Generated);
            file = handover.TemporaryFile!;
            Assert.Equal(["--tls", "--tls-cert", file], handover.WorkerArguments);
            if (!OperatingSystem.IsWindows())
            {
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
                Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Path.GetDirectoryName(file)!));
            }

            // What the worker does with it: --tls-cert FILE, the password from its environment.
            Assert.Throws<CryptographicException>(() => X509CertificateLoader.LoadPkcs12FromFile(file, password: null));
            using var loaded = X509CertificateLoader.LoadPkcs12FromFile(file, handover.Password);
            Assert.True(loaded.HasPrivateKey);
            Assert.Equal(loaded.GetCertHashString(HashAlgorithmName.SHA256), handover.Thumbprint);
            Assert.Equal([IPAddress.Loopback], SubjectAlternativeNames(loaded).IpAddresses);
            Assert.True(loaded.NotBefore <= DateTime.Now && DateTime.Now.AddDays(7) < loaded.NotAfter);
        }
        Assert.False(File.Exists(file));
        Assert.False(Directory.Exists(Path.GetDirectoryName(file)));
    }

    [Fact]
    public void A_throwaway_certificate_is_issued_for_tls_host_when_given()
    {
        var flags = ChatOptions.Parse([.. Chat, "--tls-host", "decode.test"]).Tls;
        using var handover = WorkerCertificateHandover.Prepare(flags, "127.0.0.1");
        using var loaded = X509CertificateLoader.LoadPkcs12FromFile(handover.TemporaryFile!, handover.Password);

        var names = SubjectAlternativeNames(loaded);

        Assert.Equal(["decode.test"], names.DnsNames);
        Assert.Empty(names.IpAddresses);
    }

    [Fact]
    public void Each_throwaway_certificate_is_new()
    {
        var flags = ChatOptions.Parse(Chat).Tls;
        using var first = WorkerCertificateHandover.Prepare(flags, "127.0.0.1");
        using var second = WorkerCertificateHandover.Prepare(flags, "127.0.0.1");

        Assert.NotEqual(first.Thumbprint, second.Thumbprint);
        Assert.NotEqual(first.Password, second.Password);
        Assert.NotEqual(first.TemporaryFile, second.TemporaryFile);
    }

    [Fact]
    public void A_given_certificate_is_passed_on_by_path_with_its_key_and_password_and_is_left_in_place()
    {
        using var files = new CertificateFolder();
        string encryptedKey = files.Write("key-encrypted.pem", files.Certificate.GetECDsaPrivateKey()!.ExportEncryptedPkcs8PrivateKeyPem(
            CertificateFolder.Password, new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000)));
        var flags = ChatOptions.Parse([.. Chat, "--tls-cert", files.CertificatePem, "--tls-key", encryptedKey, "--tls-password", CertificateFolder.Password]).Tls;

        using (var handover = WorkerCertificateHandover.Prepare(flags, "127.0.0.1"))
        {
            Assert.False(handover.Generated);
            Assert.Null(handover.TemporaryFile);
            Assert.Equal(["--tls", "--tls-cert", files.CertificatePem, "--tls-key", encryptedKey], handover.WorkerArguments);
            Assert.Equal(CertificateFolder.Password, handover.Password);
            Assert.Equal(files.Thumbprint, handover.Thumbprint);
        }
        Assert.True(File.Exists(files.CertificatePem) && File.Exists(encryptedKey));
    }

    [Fact]
    public void A_given_certificate_without_its_key_stops_the_chat_before_any_worker_starts()
    {
        using var files = new CertificateFolder();
        var flags = ChatOptions.Parse([.. Chat, "--tls-cert", files.PublicOnlyPkcs12, "--tls-password", CertificateFolder.Password]).Tls;

        var error = Assert.Throws<UsageException>(() => WorkerCertificateHandover.Prepare(flags, "127.0.0.1"));

        Assert.Contains("no private key", error.Message, StringComparison.Ordinal);
    }

    private static (List<string> DnsNames, List<IPAddress> IpAddresses) SubjectAlternativeNames(X509Certificate2 certificate)
    {
        var names = certificate.Extensions.OfType<X509SubjectAlternativeNameExtension>().Single();
        return ([.. names.EnumerateDnsNames()], [.. names.EnumerateIPAddresses()]);
    }
}
