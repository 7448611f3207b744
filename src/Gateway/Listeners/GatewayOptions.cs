namespace Gateway.Listeners;

/// <summary>The <c>Gateway</c> configuration section (README, "Configuration").</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Gateway";

    /// <summary>Keyed by protocol name: <c>Echo</c>, <c>Rpc</c>, <c>Ftp</c>.</summary>
    public Dictionary<string, ListenerOptions> Listeners { get; } = new(StringComparer.OrdinalIgnoreCase);

    public LimitsOptions Limits { get; set; } = new();

    public AdminOptions Admin { get; set; } = new();

    public WorkersOptions Workers { get; set; } = new();

    public ModelsOptions Models { get; set; } = new();

    /// <summary>Where handlers run between reads (README, "Execution").</summary>
    public ExecutionMode Execution { get; set; } = ExecutionMode.Inline;

    public TlsOptions Tls { get; set; } = new();

    /// <summary>The FTP listener's own keys (<c>Gateway:Listeners:Ftp:Root</c>, ...), beside its Port and Model.</summary>
    public FtpListenerOptions Ftp { get; set; } = new();
}

public sealed class FtpListenerOptions
{
    /// <summary>Relative to the content root; created if missing. Users' homes are directories under it.</summary>
    public string Root { get; set; } = "data/ftp";

    /// <summary>"first-last", ports of 1024 or more.</summary>
    public string PassivePorts { get; set; } = "50000-50099";

    /// <summary>
    /// A second FTP port where TLS starts at once (implicit FTPS, port 990 by custom), beside the explicit one; null:
    /// none, 0: a free port. Needs <c>Gateway:Tls:CertificatePath</c>; data connections there default to PROT P.
    /// </summary>
    public int? ImplicitTlsPort { get; set; }

    /// <summary>The address PASV advertises (behind NAT, in Kubernetes); empty: the control connection's local address.</summary>
    public string? PassiveAddress { get; set; }

    /// <summary>
    /// Passive ports one client address may hold waiting for their data connection (all its sessions together); a
    /// port closes once its connection arrives, or after the data timeout.
    /// </summary>
    public int MaxPassiveListenersPerAddress { get; set; } = 10;

    public bool AllowAnonymous { get; set; }

    public bool AtomicUploads { get; set; } = true;

    /// <summary>0: no limit.</summary>
    public long MaxUploadBytes { get; set; }

    /// <summary>Delay before answering a failed PASS.</summary>
    public double LoginFailureDelaySeconds { get; set; } = 1;

    /// <summary>Failed logins from one address before it is locked out for <see cref="LockoutSeconds"/>.</summary>
    public int MaxLoginFailuresPerAddress { get; set; } = 10;

    public int LockoutSeconds { get; set; } = 300;

    /// <summary>Password verifications (PBKDF2) at once, each on a thread of its own, never the thread pool's.</summary>
    public int MaxConcurrentLogins { get; set; } = 2;

    /// <summary>Verifications waiting for a thread; a PASS beyond them gets 421 at once.</summary>
    public int MaxQueuedLogins { get; set; } = 64;

    /// <summary>How long a PASS may wait for its verification before it gets 421.</summary>
    public int LoginQueueTimeoutSeconds { get; set; } = 30;

    /// <summary>How long a successful login is remembered (as an HMAC, never the password), so the next session skips PBKDF2; 0: never.</summary>
    public int LoginCacheSeconds { get; set; } = 60;

    public List<FtpUserOptions> Users { get; } = [];
}

public sealed class FtpUserOptions
{
    public string Name { get; set; } = "";

    /// <summary>From `Gateway hash-password`.</summary>
    public string PasswordHash { get; set; } = "";

    public bool ReadOnly { get; set; }

    /// <summary>Relative to the FTP root; default: the user name.</summary>
    public string? Home { get; set; }

    /// <summary>This account logs in only over AUTH TLS, and transfers only under PROT P.</summary>
    public bool RequireTls { get; set; }
}

public sealed class ListenerOptions
{
    /// <summary>False leaves the listener out.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary><c>*</c> for every interface (IPv6 and IPv4), <c>localhost</c>, or an IP address.</summary>
    public string Address { get; set; } = "*";

    /// <summary>0 picks a free port; the chosen one is logged at start.</summary>
    public int Port { get; set; }

    public string Model { get; set; } = ServerModels.Kestrel;

    /// <summary>
    /// Echo and RPC: <c>true</c> serves the listener over TLS (needs <c>Gateway:Tls:CertificatePath</c>); default
    /// false. FTP: <c>off</c>, <c>explicit</c> (AUTH TLS offered; the default when a certificate is configured)
    /// or <c>required</c> (TLS before login and on every data connection).
    /// </summary>
    public string? Tls { get; set; }
}

/// <summary>The server certificate (<c>Gateway:Tls</c>); without one, TLS is off.</summary>
public sealed class TlsOptions
{
    /// <summary>A PEM certificate (its chain may follow it in the file) or a PKCS#12 (.pfx) file; relative to the content root.</summary>
    public string? CertificatePath { get; set; }

    /// <summary>The PEM private key, when it is not in <see cref="CertificatePath"/>'s file.</summary>
    public string? KeyPath { get; set; }

    /// <summary>The PKCS#12 file's password, or an encrypted PEM key's.</summary>
    public string? Password { get; set; }
}

public sealed class LimitsOptions
{
    public int MaxConnections { get; set; } = 100_000;

    /// <summary>0: no per-address limit.</summary>
    public int MaxConnectionsPerIp { get; set; }

    public int MaxFrameBytes { get; set; } = 1024 * 1024;

    /// <summary>0: connections never time out for idleness.</summary>
    public int IdleTimeoutSeconds { get; set; } = 300;

    /// <summary>
    /// An RPC frame in progress slower than this on average after the grace period closes its connection with a
    /// <c>too_slow</c> error frame. 0 turns it off. (FTP command lines are typed by hand: the idle timeout covers them.)
    /// </summary>
    public double MinDataRateBytesPerSecond { get; set; } = 240;

    public double MinDataRateGraceSeconds { get; set; } = 5;

    public int ShutdownTimeoutSeconds { get; set; } = 30;
}

public sealed class AdminOptions
{
    public string Url { get; set; } = "http://127.0.0.1:8080";

    /// <summary>When set, every /admin request must carry it (X-Api-Key or Authorization: Bearer).</summary>
    public string ApiKey { get; set; } = "";

    /// <summary>How long DELETE /admin/connections/{id} waits for a graceful close before aborting.</summary>
    public int CloseGraceSeconds { get; set; } = 5;
}

/// <summary>The worker processes that serve the listeners whose model is <c>prefork</c> (<c>Gateway:Workers</c>).</summary>
public sealed class WorkersOptions
{
    /// <summary>0: one worker per core.</summary>
    public int Count { get; set; }

    /// <summary><c>async</c> (each worker an event loop), <c>sync</c> (one connection at a time), <c>per-connection</c>.</summary>
    public string Mode { get; set; } = "async";

    /// <summary><c>per-connection</c>: at most this many worker processes at once (0: 64 per core).</summary>
    public int MaxProcesses { get; set; }

    /// <summary>The workers there will be: <see cref="Count"/>, or one per core.</summary>
    public int EffectiveCount => Count > 0 ? Count : Environment.ProcessorCount;
}

/// <summary>Where a connection's handler runs when its bytes arrive (<c>Gateway:Execution</c>).</summary>
public enum ExecutionMode
{
    /// <summary>
    /// On the I/O thread that read them, to the reply and the next wait (run to completion, as Redis does): no
    /// thread hop per request. Work that may take long leaves that thread itself (the protocols' IoThread).
    /// </summary>
    Inline,

    /// <summary>On the thread pool: every wake-up hops from the I/O thread to a pool thread.</summary>
    Pool,
}

/// <summary>Settings of the in-process models (<c>Gateway:Models</c>).</summary>
public sealed class ModelsOptions
{
    /// <summary>Reactor threads per listener for epoll, epoll-et, poll and select; 0: one per two cores, at least one.</summary>
    public int ReactorThreads { get; set; }

    /// <summary>
    /// Threads the <c>threads</c> and <c>iterative</c> models may start for connections, two per connection, in this
    /// process; a connection past it is refused at accept time. 0: what the PID limits allow (the cgroup's
    /// <c>pids.max</c>, RLIMIT_NPROC) less room for the runtime's own threads, or no limit when there are none.
    /// </summary>
    public int MaxThreads { get; set; }
}
