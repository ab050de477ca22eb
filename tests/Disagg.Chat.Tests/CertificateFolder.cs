using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Chat.Tests;

/// <summary>A temp folder of certificate files for one test: a self-signed certificate as PKCS#12, with and without its key, and PEM.</summary>
internal sealed class CertificateFolder : IDisposable
{
    public const string Password = "correct horse";

    private readonly string _folder = Directory.CreateTempSubdirectory("disagg-chat-tls-").FullName;

    public CertificateFolder(string host = "decode.test")
    {
        Certificate = ThrowawayCertificate.Create(host);
        Pkcs12 = Write("worker.p12", Certificate.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, Password));
        PublicOnlyPkcs12 = Write("public.p12", X509CertificateLoader.LoadCertificate(Certificate.RawData).Export(X509ContentType.Pkcs12, Password)!);
        CertificatePem = Write("cert.pem", Certificate.ExportCertificatePem());
        KeyPem = Write("key.pem", Certificate.GetECDsaPrivateKey()!.ExportPkcs8PrivateKeyPem());
    }

    /// <summary>The certificate in the files, with its key.</summary>
    public X509Certificate2 Certificate { get; }

    public string Thumbprint => Certificate.GetCertHashString(HashAlgorithmName.SHA256);

    public string Pkcs12 { get; }
    public string PublicOnlyPkcs12 { get; }
    public string CertificatePem { get; }
    public string KeyPem { get; }

    /// <summary>A path in the folder where nothing is.</summary>
    public string Missing => Path.Combine(_folder, "missing.p12");

    public string Write(string name, string text) => Write(name, System.Text.Encoding.ASCII.GetBytes(text));

    public string Write(string name, byte[] contents)
    {
        string path = Path.Combine(_folder, name);
        File.WriteAllBytes(path, contents);
        return path;
    }

    public void Dispose()
    {
        Certificate.Dispose();
        Directory.Delete(_folder, recursive: true);
    }
}
