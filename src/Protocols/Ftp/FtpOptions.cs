using System.Net;
using System.Net.Security;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// A configured account. <see cref="Home"/> is relative to the server root (default: the user name);
/// <see cref="RequireTls"/>: it may log in only over AUTH TLS.
/// </summary>
public sealed record FtpUser(string Name, string PasswordHash, bool ReadOnly = false, string? Home = null, bool RequireTls = false);

/// <summary>What the FTP handler needs; the host fills it from <c>Gateway:Listeners:Ftp</c>.</summary>
public sealed record FtpOptions
{
    /// <summary>Absolute path of the server root; users' homes and the anonymous root live under it.</summary>
    public required string Root { get; init; }

    public IReadOnlyList<FtpUser> Users { get; init; } = [];

    /// <summary>Anonymous login ("anonymous" or "ftp", any password): read-only, in <see cref="AnonymousHome"/>.</summary>
    public bool AllowAnonymous { get; init; }

    public string AnonymousHome { get; init; } = "anonymous";

    /// <summary>Uploads under a hidden name, renamed when complete; REST before STOR is then refused.</summary>
    public bool AtomicUploads { get; init; } = true;

    public int PassivePortMin { get; init; } = 50000;

    public int PassivePortMax { get; init; } = 50099;

    /// <summary>The address PASV/EPSV advertise (NAT, Kubernetes); null: the control connection's local address.</summary>
    public IPAddress? PassiveAddress { get; init; }

    /// <summary>
    /// Passive listeners one client address may have waiting for their data connection at once, over all its
    /// sessions; a PASV beyond it gets 425. A listener closes once its connection arrives or after <see cref="DataTimeout"/>.
    /// </summary>
    public int MaxPassiveListenersPerAddress { get; init; } = 10;

    /// <summary>How long a data connection may take to arrive or to make progress.</summary>
    public TimeSpan DataTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Delay before answering a failed PASS (slows guessing).</summary>
    public TimeSpan LoginFailureDelay { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Failed logins on one connection before it is closed.</summary>
    public int MaxLoginFailuresPerConnection { get; init; } = 3;

    /// <summary>Failed logins from one address, within <see cref="LockoutDuration"/>, before it is locked out for that long.</summary>
    public int MaxLoginFailuresPerAddress { get; init; } = 10;

    public TimeSpan LockoutDuration { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Password verifications (PBKDF2) running at once, each on a thread of its own (<see cref="FtpPasswordVerifier"/>).</summary>
    public int MaxConcurrentLogins { get; init; } = 2;

    /// <summary>Verifications waiting for a thread; a PASS beyond them gets 421 at once.</summary>
    public int MaxQueuedLogins { get; init; } = 64;

    /// <summary>How long a PASS may wait for its verification before it gets 421.</summary>
    public TimeSpan LoginQueueTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a successful login is remembered (<see cref="FtpLoginCache"/>); zero: never.</summary>
    public TimeSpan LoginCacheDuration { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Largest upload accepted; 0: no limit.</summary>
    public long MaxUploadBytes { get; init; }

    /// <summary>
    /// TLS for AUTH TLS and for data connections under PROT P (the same certificate context for both, so data
    /// connections can resume the control connection's TLS session); null: TLS is not available.
    /// </summary>
    public Func<SslServerAuthenticationOptions>? Tls { get; init; }

    /// <summary>Every session must secure its control connection before USER, and its data connections (PROT P).</summary>
    public bool RequireTls { get; init; }

    /// <summary>How long a TLS handshake (control or data) may take.</summary>
    public TimeSpan TlsHandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);
}

/// <summary>
/// Set by the host on connections of an implicit-FTPS port: the session starts TLS before its greeting, with the
/// same certificate context as AUTH TLS and the data connections (so those resume its session).
/// </summary>
public sealed class FtpImplicitTlsFeature
{
    public static readonly FtpImplicitTlsFeature Instance = new();
}
