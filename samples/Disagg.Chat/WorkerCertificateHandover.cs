using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Disagg.Chat;

/// <summary>
/// The certificate the chat gives a decode worker it starts itself with --tls, and then pins: the one from --tls-cert, or a
/// <see cref="ThrowawayCertificate"/>. A throwaway one reaches the worker as a PKCS#12 file in a fresh owner-only temp folder,
/// encrypted with a random password that goes through the worker's environment (never its command line); disposing deletes it,
/// which the chat does as soon as the worker has loaded it.
/// </summary>
internal sealed class WorkerCertificateHandover : IDisposable
{
    private const string FileName = "worker.p12";

    private readonly string? _temporaryFolder;

    private WorkerCertificateHandover(X509Certificate2 certificate, IReadOnlyList<string> workerArguments, string? password, string? temporaryFolder)
    {
        Thumbprint = ChatTls.Thumbprint(certificate);
        Subject = certificate.Subject;
        WorkerArguments = workerArguments;
        Password = password;
        _temporaryFolder = temporaryFolder;
    }

    /// <summary>The certificate's SHA-256 thumbprint, which the chat pins.</summary>
    public string Thumbprint { get; }

    public string Subject { get; }

    /// <summary>The --tls* arguments for the worker's command line.</summary>
    public IReadOnlyList<string> WorkerArguments { get; }

    /// <summary>The certificate's password, for the worker's <see cref="TlsFlags.PasswordVariable"/>; null when there is none.</summary>
    public string? Password { get; }

    /// <summary>Whether the certificate was made here (no --tls-cert).</summary>
    public bool Generated => _temporaryFolder is not null;

    /// <summary>The throwaway certificate's file, while it exists; null for a --tls-cert one.</summary>
    public string? TemporaryFile => _temporaryFolder is null ? null : Path.Combine(_temporaryFolder, FileName);

    /// <summary>Hands over --tls-cert when given (checking first that it loads, with its key), else a throwaway certificate for
    /// <paramref name="host"/> (--tls-host, or the endpoint's address, the name the chat will expect).</summary>
    public static WorkerCertificateHandover Prepare(TlsFlags flags, string host)
    {
        if (flags.CertificatePath is { } path)
        {
            using var given = ChatTls.LoadCertificate(flags);
            List<string> arguments = ["--tls", "--tls-cert", Path.GetFullPath(path)];
            if (flags.KeyPath is { } key) arguments.AddRange(["--tls-key", Path.GetFullPath(key)]);
            return new WorkerCertificateHandover(given, arguments, flags.EffectivePassword, temporaryFolder: null);
        }

        using var made = ThrowawayCertificate.Create(flags.TargetHost ?? host);
        string password = Convert.ToHexString(RandomNumberGenerator.GetBytes(24));
        string folder = Directory.CreateTempSubdirectory("disagg-tls-").FullName; // created owner-only (0700) on Unix
        string file = Path.Combine(folder, FileName);
        try
        {
            WriteOwnerOnly(file, made.ExportPkcs12(Pkcs12ExportPbeParameters.Pbes2Aes256Sha256, password));
        }
        catch
        {
            Directory.Delete(folder, recursive: true);
            throw;
        }
        return new WorkerCertificateHandover(made, ["--tls", "--tls-cert", file], password, folder);
    }

    /// <summary>Deletes the throwaway certificate's file and folder (nothing for a --tls-cert one).</summary>
    public void Dispose()
    {
        if (_temporaryFolder is not null && Directory.Exists(_temporaryFolder)) Directory.Delete(_temporaryFolder, recursive: true);
    }

    private static void WriteOwnerOnly(string path, byte[] contents)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows()) options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        using var file = new FileStream(path, options);
        file.Write(contents);
    }
}
