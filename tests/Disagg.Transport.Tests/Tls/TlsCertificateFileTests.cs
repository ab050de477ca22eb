using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Disagg.Transport.Sockets;

namespace Disagg.Transport.Tests.Tls;

/// <summary><see cref="TlsCertificateFile.Load"/>: every file form gives back the certificate that was written, with its key.</summary>
public sealed class TlsCertificateFileTests : IDisposable
{
    private const string Password = "correct horse";
    private static readonly PbeParameters Encryption = new(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 1000);

    private readonly string _folder = Directory.CreateTempSubdirectory("disagg-tls-files-").FullName;
    private readonly X509Certificate2 _certificate = TestCertificates.SelfSigned("decode-worker.test");

    public void Dispose()
    {
        _certificate.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    public static TheoryData<string> Forms() => ["pkcs12", "pkcs12 with password", "pem with key", "pem and key file", "pem and encrypted key file"];

    [Theory]
    [MemberData(nameof(Forms))]
    public void Each_form_loads_the_certificate_with_its_private_key(string form)
    {
        string certificatePem = _certificate.ExportCertificatePem(), key = Key().ExportPkcs8PrivateKeyPem();
        using var loaded = form switch
        {
            "pkcs12" => TlsCertificateFile.Load(Write("a.p12", _certificate.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, null))),
            "pkcs12 with password" => TlsCertificateFile.Load(Write("a.pfx", _certificate.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, Password)), password: Password),
            "pem with key" => TlsCertificateFile.Load(Write("a.pem", "\n" + certificatePem + "\n" + key)),
            "pem and key file" => TlsCertificateFile.Load(Write("a.crt", certificatePem), Write("a.key", key)),
            _ => TlsCertificateFile.Load(Write("a.crt", certificatePem), Write("a.key", Key().ExportEncryptedPkcs8PrivateKeyPem(Password, Encryption)), Password),
        };

        Assert.Equal(_certificate.RawData, loaded.RawData);
        Assert.True(loaded.HasPrivateKey);
        using var mine = loaded.GetECDsaPrivateKey()!;
        byte[] data = "proof of possession"u8.ToArray();
        Assert.True(_certificate.GetECDsaPublicKey()!.VerifyData(data, mine.SignData(data, HashAlgorithmName.SHA256), HashAlgorithmName.SHA256));
    }

    [Fact]
    public void A_pkcs12_file_without_a_key_loads_without_one_and_the_transport_refuses_it()
    {
        using var publicOnly = X509CertificateLoader.LoadCertificate(_certificate.RawData);
        using var loaded = TlsCertificateFile.Load(Write("public.p12", publicOnly.Export(X509ContentType.Pkcs12)!));

        Assert.False(loaded.HasPrivateKey);
        var options = new SocketTransportOptions { SharedSecret = new byte[16], Tls = new SocketTlsOptions { ServerCertificate = loaded } };
        Assert.Contains("no private key", Assert.Throws<ArgumentException>(options.Validate).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Missing_files_wrong_passwords_and_pem_without_a_key_fail_with_typed_errors()
    {
        string pkcs12 = Write("a.p12", _certificate.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, Password));
        string pemAlone = Write("a.crt", _certificate.ExportCertificatePem());

        Assert.Throws<FileNotFoundException>(() => TlsCertificateFile.Load(Path.Combine(_folder, "missing.p12")));
        Assert.Throws<FileNotFoundException>(() => TlsCertificateFile.Load(pemAlone, Path.Combine(_folder, "missing.key")));
        Assert.ThrowsAny<CryptographicException>(() => TlsCertificateFile.Load(pkcs12, password: "wrong"));
        Assert.ThrowsAny<CryptographicException>(() => TlsCertificateFile.Load(pemAlone));
        Assert.ThrowsAny<CryptographicException>(() => TlsCertificateFile.Load(Write("junk.p12", "not a certificate"u8.ToArray())));
    }

    private ECDsa Key() => _certificate.GetECDsaPrivateKey()!;

    private string Write(string name, string text) => Write(name, System.Text.Encoding.ASCII.GetBytes(text));

    private string Write(string name, byte[] contents)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, contents);
        return path;
    }
}
