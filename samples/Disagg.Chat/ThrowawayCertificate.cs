using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Chat;

/// <summary>
/// A self-signed server certificate made in memory for a decode worker that the chat starts itself with --tls and no --tls-cert.
/// Nothing else trusts it: the chat pins its thumbprint, and its key lives only as long as the two processes.
/// </summary>
internal static class ThrowawayCertificate
{
    /// <summary>How long it stays valid: long enough for any chat session; the pin, not the date, is what makes it trusted.</summary>
    public static readonly TimeSpan Lifetime = TimeSpan.FromDays(30);

    /// <summary>A certificate for <paramref name="host"/> (an IP address or a DNS name), with its private key (ECDSA P-256).</summary>
    public static X509Certificate2 Create(string host)
    {
        var request = new CertificateRequest($"CN={host}", ECDsa.Create(ECCurve.NamedCurves.nistP256), HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false)); // server authentication
        // TLS checks the name the client expects against the subject alternative names, so the host must be one of them.
        var names = new SubjectAlternativeNameBuilder();
        if (IPAddress.TryParse(host, out var address)) names.AddIpAddress(address);
        else names.AddDnsName(host);
        request.CertificateExtensions.Add(names.Build());
        var now = DateTimeOffset.UtcNow;
        return request.CreateSelfSigned(now.AddMinutes(-5), now + Lifetime); // a little back-dated: clocks of two processes agree, but not to the second
    }
}
