namespace Disagg.Chat;

/// <summary>
/// The --tls* options as given. The chat (prefill side) checks the decode worker's certificate: by pinned thumbprint, else by
/// --tls-ca or the system's roots, issued for --tls-host or the endpoint's address; it may present --tls-client-cert. The worker
/// (--serve-decode) presents --tls-cert, and with --tls-client-ca or --tls-client-pin accepts only chats presenting such a certificate.
/// </summary>
internal sealed class TlsFlags
{
    /// <summary>The environment variable read for the certificate's password when --tls-password is not given (it keeps the
    /// password off the command line, where other users can see it).</summary>
    public const string PasswordVariable = "DISAGG_TLS_PASSWORD";

    public bool Enabled { get; set; }

    /// <summary>PKCS#12, or PEM (with its key, or the key in <see cref="KeyPath"/>): the worker's certificate.</summary>
    public string? CertificatePath { get; set; }

    public string? KeyPath { get; set; }

    public string? Password { get; set; }

    /// <summary>SHA-256 thumbprints of worker certificates to trust without a chain, upper-case hex without separators.</summary>
    public List<string> Pins { get; } = [];

    /// <summary>The name the worker's certificate must be issued for; null: the endpoint's address.</summary>
    public string? TargetHost { get; set; }

    /// <summary>Chat: CA certificates (PEM bundle or DER) the worker's certificate must chain to, instead of the system's roots.</summary>
    public string? AuthorityPath { get; set; }

    /// <summary>Chat: its own certificate (PKCS#12, or PEM with <see cref="ClientKeyPath"/>), for a worker that requires one.</summary>
    public string? ClientCertificatePath { get; set; }

    public string? ClientKeyPath { get; set; }

    /// <summary>Worker: CA certificates a chat's certificate must chain to; a chat without one is refused.</summary>
    public string? ClientAuthorityPath { get; set; }

    /// <summary>Worker: SHA-256 thumbprints of chat certificates to accept with no chain; a chat without one is refused.</summary>
    public List<string> ClientPins { get; } = [];

    /// <summary>Worker: whether chats must present a certificate (--tls-client-ca or --tls-client-pin given).</summary>
    public bool RequiresClientCertificate => ClientAuthorityPath is not null || ClientPins.Count > 0;

    /// <summary>The password given, else the one in <see cref="PasswordVariable"/>, else none.</summary>
    public string? EffectivePassword => Password ?? (Environment.GetEnvironmentVariable(PasswordVariable) is { Length: > 0 } p ? p : null);

    /// <summary>A --tls-pin or --tls-client-pin (<paramref name="flag"/>) value as upper-case hex: 64 hex digits, ':' separators allowed.</summary>
    public static string Thumbprint(string text, string flag = "--tls-pin")
    {
        string hex = text.Replace(":", "", StringComparison.Ordinal).ToUpperInvariant();
        return hex.Length == 64 && hex.All(char.IsAsciiHexDigit)
            ? hex
            : throw new UsageException($"{flag} '{text}' is not a SHA-256 certificate thumbprint (64 hex digits, ':' separators allowed).");
    }

    /// <summary>A --tls-host value: a DNS name or an IP address.</summary>
    public static string HostName(string text) =>
        Uri.CheckHostName(text) != UriHostNameType.Unknown ? text : throw new UsageException($"--tls-host '{text}' is not a host name or an IP address.");

    /// <summary>Checks the flags against the role (<paramref name="options"/>: chat or worker) and the endpoint's kind.</summary>
    public void Validate(ChatOptions options)
    {
        if (!Enabled)
        {
            string? stray = CertificatePath is not null ? "--tls-cert" : KeyPath is not null ? "--tls-key" : Password is not null ? "--tls-password"
                : Pins.Count > 0 ? "--tls-pin" : TargetHost is not null ? "--tls-host" : AuthorityPath is not null ? "--tls-ca"
                : ClientCertificatePath is not null ? "--tls-client-cert" : ClientKeyPath is not null ? "--tls-client-key"
                : ClientAuthorityPath is not null ? "--tls-client-ca" : ClientPins.Count > 0 ? "--tls-client-pin" : null;
            if (stray is not null) throw new UsageException($"{stray} needs --tls.");
            return;
        }
        bool unix = options.Endpoint?.StartsWith("unix:", StringComparison.Ordinal) ?? options.Transport == "unix";
        if (unix) throw new UsageException("--tls is for TCP: a Unix socket stays on this host, guarded by its file permissions (use --transport tcp, or leave out --tls).");
        if (!options.ServeDecode && options.Transport != "tcp")
            throw new UsageException("--tls needs --mode disaggregated --transport tcp (or --serve-decode at a tcp: endpoint): it protects the socket to the decode worker.");
        if (CertificatePath is null && KeyPath is not null)
            throw new UsageException("--tls-key needs --tls-cert (the certificate it belongs to).");
        if (CertificatePath is null && ClientCertificatePath is null && Password is not null)
            throw new UsageException("--tls-password needs --tls-cert or --tls-client-cert (the certificate it belongs to).");
        if (ClientKeyPath is not null && ClientCertificatePath is null)
            throw new UsageException("--tls-client-key needs --tls-client-cert (the certificate it belongs to).");
        RequireFile("--tls-cert", CertificatePath);
        RequireFile("--tls-key", KeyPath);
        RequireFile("--tls-ca", AuthorityPath);
        RequireFile("--tls-client-cert", ClientCertificatePath);
        RequireFile("--tls-client-key", ClientKeyPath);
        RequireFile("--tls-client-ca", ClientAuthorityPath);
        if (options.ServeDecode)
        {
            if (CertificatePath is null)
                throw new UsageException("--serve-decode --tls needs --tls-cert: the certificate the worker presents (PKCS#12, or PEM with its key).");
            string? chatFlag = Pins.Count > 0 ? "--tls-pin" : TargetHost is not null ? "--tls-host" : AuthorityPath is not null ? "--tls-ca"
                : ClientCertificatePath is not null ? "--tls-client-cert" : null;
            if (chatFlag is not null)
                throw new UsageException($"{chatFlag} is for the chat, which checks the worker's certificate and presents its own; " +
                    "the worker presents --tls-cert and checks chats with --tls-client-ca or --tls-client-pin.");
        }
        else if (RequiresClientCertificate)
        {
            throw new UsageException($"{(ClientAuthorityPath is not null ? "--tls-client-ca" : "--tls-client-pin")} is for --serve-decode: the worker checks " +
                "the chat's certificate. A worker this chat starts accepts only its --tls-client-cert by itself.");
        }
        else if (options.Attach && CertificatePath is not null)
        {
            throw new UsageException("--tls-cert with --attach: the certificate belongs to the worker (give it to --serve-decode); " +
                "the chat trusts it with --tls-pin or the system's roots.");
        }
    }

    private static void RequireFile(string flag, string? path)
    {
        if (path is not null && !File.Exists(path)) throw new UsageException($"{flag} '{path}' does not exist.");
    }
}
