using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Transport.Sockets;

/// <summary>
/// Loads a certificate and its private key from files, for <see cref="SocketTlsOptions.ServerCertificate"/> or
/// <see cref="SocketTlsOptions.ClientCertificate"/>: a PKCS#12 file (.pfx, .p12), or PEM (the key in the same file or its own).
/// </summary>
public static class TlsCertificateFile
{
    /// <summary>Reads the certificate at <paramref name="path"/>, telling PEM from PKCS#12 by its first characters.</summary>
    /// <param name="path">A PKCS#12 file, or a PEM file holding the certificate (and its key when <paramref name="keyPath"/> is null).</param>
    /// <param name="keyPath">A PEM file holding the private key, when it is not in <paramref name="path"/>.</param>
    /// <param name="password">The PKCS#12 file's password, or the encrypted PEM key's; null when there is none.</param>
    /// <returns>The certificate. A PKCS#12 file without a key gives one whose <see cref="X509Certificate2.HasPrivateKey"/> is false
    /// (<see cref="SocketTransportOptions.Validate"/> refuses it); a PEM file without one fails to load.</returns>
    /// <exception cref="IOException">A file is missing or cannot be read.</exception>
    /// <exception cref="CryptographicException">A file holds no certificate or key of that form, or the password is wrong.</exception>
    public static X509Certificate2 Load(string path, string? keyPath = null, string? password = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (keyPath is not null || IsPem(path))
        {
            return password is null
                ? X509Certificate2.CreateFromPemFile(path, keyPath)
                : X509Certificate2.CreateFromEncryptedPemFile(path, password, keyPath);
        }
        return X509CertificateLoader.LoadPkcs12FromFile(path, password);
    }

    /// <summary>Reads certificate authorities for <see cref="SocketTlsOptions.TrustedCertificateAuthorities"/>: a PEM file of one
    /// or more certificates (a CA bundle), or one DER certificate.</summary>
    /// <exception cref="IOException">The file is missing or cannot be read.</exception>
    /// <exception cref="CryptographicException">The file holds no certificate.</exception>
    public static IReadOnlyList<X509Certificate2> LoadAuthorities(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!IsPem(path)) return [X509CertificateLoader.LoadCertificateFromFile(path)];
        var bundle = new X509Certificate2Collection();
        bundle.ImportFromPemFile(path);
        if (bundle.Count == 0) throw new CryptographicException($"'{path}' holds no PEM certificate.");
        return [.. bundle];
    }

    private static bool IsPem(string path)
    {
        using var reader = new StreamReader(path);
        var start = new char[64];
        int n = reader.ReadBlock(start);
        return new string(start, 0, n).TrimStart().StartsWith("-----BEGIN", StringComparison.Ordinal);
    }
}
