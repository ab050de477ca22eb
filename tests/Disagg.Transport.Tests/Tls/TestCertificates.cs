using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Transport.Tests.Tls;

/// <summary>Certificates made in memory for a test (ECDSA P-256: quick to generate), valid from yesterday to tomorrow.</summary>
internal static class TestCertificates
{
    private static readonly DateTimeOffset NotBefore = DateTimeOffset.UtcNow.AddDays(-1), NotAfter = DateTimeOffset.UtcNow.AddDays(1);

    /// <summary>A self-signed certificate for <paramref name="host"/>, usable by a server and a client.</summary>
    public static X509Certificate2 SelfSigned(string host) => Request(host, authority: false).CreateSelfSigned(NotBefore, NotAfter);

    /// <summary>A private certificate authority.</summary>
    public static X509Certificate2 Authority(string name) => Request(name, authority: true).CreateSelfSigned(NotBefore, NotAfter);

    /// <summary>A certificate for <paramref name="host"/> issued by <paramref name="authority"/>, with its private key.</summary>
    public static X509Certificate2 IssuedBy(X509Certificate2 authority, string host)
    {
        var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = Request(host, authority: false, key);
        using var issued = request.Create(authority, NotBefore.AddMinutes(1), NotAfter.AddMinutes(-1), RandomNumberGenerator.GetBytes(8));
        return issued.CopyWithPrivateKey(key);
    }

    /// <summary>The same certificate without its private key (what a peer sees).</summary>
    public static X509Certificate2 PublicOnly(X509Certificate2 certificate) => X509CertificateLoader.LoadCertificate(certificate.RawData);

    public static string Sha256(X509Certificate2 certificate) => certificate.GetCertHashString(HashAlgorithmName.SHA256);

    private static CertificateRequest Request(string name, bool authority, ECDsa? key = null)
    {
        var request = new CertificateRequest($"CN={name}", key ?? ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(authority, false, 0, critical: true));
        if (authority)
        {
            request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
            request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
            return request;
        }
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension(
            [new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false)); // server and client authentication
        var names = new SubjectAlternativeNameBuilder();
        names.AddDnsName(name);
        request.CertificateExtensions.Add(names.Build());
        return request;
    }
}
