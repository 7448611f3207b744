using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gateway.Listeners;

/// <summary>
/// The server certificate from <c>Gateway:Tls</c>: a PEM certificate (chain after it) with its key in the same
/// file or in <c>KeyPath</c>, or a PKCS#12 file with <c>Password</c>. Loaded at start (a bad file stops the
/// process with one line, like any configuration error) and again whenever the files change — a renewed
/// certificate (cert-manager, a Kubernetes Secret swapping its <c>..data</c> link) is served to new connections
/// without a restart; a reload that fails keeps the old certificate and logs why. Every TLS connection takes
/// its options from <see cref="ServerOptions"/>: one <see cref="SslStreamCertificateContext"/> per certificate,
/// shared (the chain is built once, and TLS sessions resume across connections).
/// </summary>
public sealed partial class ServerCertificate : IDisposable
{
    private static readonly TimeSpan ReloadDelay = TimeSpan.FromMilliseconds(500);

    private readonly string? _certificatePath;
    private readonly string? _keyPath;
    private readonly string? _password;
    private readonly ILogger<ServerCertificate> _logger;
    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly Timer? _reload;
    private volatile SslStreamCertificateContext? _current;
    private byte[]? _loadedFrom;

    public ServerCertificate(TlsOptions options, IHostEnvironment environment, ILogger<ServerCertificate> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(environment);
        _logger = logger;
        if (string.IsNullOrWhiteSpace(options.CertificatePath))
        {
            return;
        }

        _certificatePath = Path.GetFullPath(options.CertificatePath, environment.ContentRootPath);
        _keyPath = string.IsNullOrWhiteSpace(options.KeyPath) ? null : Path.GetFullPath(options.KeyPath, environment.ContentRootPath);
        _password = options.Password;
        Reload(initial: true);
        _reload = new Timer(_ => Reload(initial: false));
        foreach (var directory in new[] { _certificatePath, _keyPath }.OfType<string>().Select(Path.GetDirectoryName).Distinct())
        {
            // The whole folder: editors and Kubernetes replace files (rename, symlink swap) rather than write them.
            var watcher = new FileSystemWatcher(directory!) { IncludeSubdirectories = false, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime };
            watcher.Changed += (_, _) => _reload.Change(ReloadDelay, Timeout.InfiniteTimeSpan);
            watcher.Created += (_, _) => _reload.Change(ReloadDelay, Timeout.InfiniteTimeSpan);
            watcher.Renamed += (_, _) => _reload.Change(ReloadDelay, Timeout.InfiniteTimeSpan);
            watcher.Deleted += (_, _) => _reload.Change(ReloadDelay, Timeout.InfiniteTimeSpan);
            watcher.EnableRaisingEvents = true;
            _watchers.Add(watcher);
        }
    }

    /// <summary>Whether a certificate is configured (and so TLS listeners can exist).</summary>
    public bool IsConfigured => _current is not null;

    /// <summary>The certificate served now.</summary>
    public X509Certificate2? Certificate => _current?.TargetCertificate;

    /// <summary>
    /// What a TLS connection is accepted with: the current certificate; by default TLS 1.2 and 1.3 (the system's
    /// choice), or only <paramref name="protocols"/>.
    /// </summary>
    public SslServerAuthenticationOptions ServerOptions(SslProtocols protocols = SslProtocols.None) => new()
    {
        ServerCertificateContext = _current ?? throw new InvalidOperationException("no certificate is configured (Gateway:Tls:CertificatePath)"),
        ClientCertificateRequired = false,
        CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        EnabledSslProtocols = protocols,
    };

    /// <summary>Loads the files as configured, for the start-up check; the problem in one line when they do not load.</summary>
    public static string? Check(TlsOptions options, string contentRoot)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (string.IsNullOrWhiteSpace(options.CertificatePath))
        {
            return null;
        }

        try
        {
            var keyPath = string.IsNullOrWhiteSpace(options.KeyPath) ? null : Path.GetFullPath(options.KeyPath, contentRoot);
            using var loaded = Load(Path.GetFullPath(options.CertificatePath, contentRoot), keyPath, options.Password).Leaf;
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or InvalidOperationException)
        {
            return $"{GatewayOptions.SectionName}:Tls: cannot load the certificate: {e.Message}";
        }
    }

    public void Dispose()
    {
        foreach (var watcher in _watchers)
        {
            watcher.Dispose();
        }

        _reload?.Dispose();
    }

    private void Reload(bool initial)
    {
        lock (_watchers)
        {
            try
            {
                // Unchanged files (a watcher fires for many reasons) keep the context and its TLS sessions.
                var content = Fingerprint();
                if (!initial && _loadedFrom is not null && content.AsSpan().SequenceEqual(_loadedFrom))
                {
                    return;
                }

                var (leaf, chain) = Load(_certificatePath!, _keyPath, _password);
                _current = SslStreamCertificateContext.Create(leaf, chain, offline: true);
                _loadedFrom = content;
                var (subject, notAfter) = (leaf.Subject, leaf.NotAfter.ToUniversalTime());
                if (initial)
                {
                    LogLoaded(_logger, subject, leaf.Thumbprint, notAfter, _certificatePath!);
                }
                else
                {
                    LogReloaded(_logger, subject, leaf.Thumbprint, notAfter);
                }

                if (notAfter < DateTime.UtcNow)
                {
                    LogExpired(_logger, subject, notAfter);
                }
            }
            catch (Exception e) when (!initial && e is IOException or UnauthorizedAccessException or CryptographicException or ArgumentException or InvalidOperationException)
            {
                // Half-written files, a swap in progress: the old certificate stays; the next change tries again.
                LogReloadFailed(_logger, e.Message);
            }
        }
    }

    private byte[] Fingerprint()
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var path in new[] { _certificatePath, _keyPath }.OfType<string>())
        {
            hash.AppendData(File.ReadAllBytes(path));
        }

        return hash.GetHashAndReset();
    }

    private static (X509Certificate2 Leaf, X509Certificate2Collection Chain) Load(string certificatePath, string? keyPath, string? password)
    {
        var chain = new X509Certificate2Collection();
        X509Certificate2 leaf;
        if (File.ReadAllText(certificatePath).Contains("-----BEGIN", StringComparison.Ordinal))
        {
            leaf = string.IsNullOrEmpty(password)
                ? X509Certificate2.CreateFromPemFile(certificatePath, keyPath)
                : X509Certificate2.CreateFromEncryptedPemFile(certificatePath, password, keyPath);
            chain.ImportFromPemFile(certificatePath);
            chain.RemoveAt(0); // the leaf itself
        }
        else
        {
            var all = X509CertificateLoader.LoadPkcs12CollectionFromFile(certificatePath, password);
            leaf = all.FirstOrDefault(c => c.HasPrivateKey)
                ?? throw new InvalidOperationException($"{certificatePath} holds no certificate with a private key");
            chain.AddRange(all.Where(c => !ReferenceEquals(c, leaf)).ToArray());
        }

        if (!leaf.HasPrivateKey)
        {
            throw new InvalidOperationException($"{certificatePath}: no private key for the certificate (set Gateway:Tls:KeyPath)");
        }

        return (leaf, chain);
    }

    [LoggerMessage(EventId = 80, Level = LogLevel.Information, Message = "TLS certificate {Subject} (thumbprint {Thumbprint}, valid until {NotAfter:u}) from {Path}; reloaded when the files change")]
    private static partial void LogLoaded(ILogger logger, string subject, string thumbprint, DateTime notAfter, string path);

    [LoggerMessage(EventId = 81, Level = LogLevel.Information, Message = "TLS certificate reloaded: {Subject} (thumbprint {Thumbprint}, valid until {NotAfter:u}); new connections get it")]
    private static partial void LogReloaded(ILogger logger, string subject, string thumbprint, DateTime notAfter);

    [LoggerMessage(EventId = 82, Level = LogLevel.Error, Message = "TLS certificate not reloaded, the previous one stays: {Problem}")]
    private static partial void LogReloadFailed(ILogger logger, string problem);

    [LoggerMessage(EventId = 83, Level = LogLevel.Warning, Message = "TLS certificate {Subject} expired on {NotAfter:u}; clients that check it will refuse it")]
    private static partial void LogExpired(ILogger logger, string subject, DateTime notAfter);
}
