using System.Net;

namespace Gateway.Protocols.Ftp;

public enum FtpLoginOutcome
{
    Ok,

    /// <summary>Wrong password or no such user (the client cannot tell which).</summary>
    Failed,

    /// <summary>The address has failed too often within the lockout window; nothing was checked.</summary>
    LockedOut,

    /// <summary>Too many verifications running and waiting; nothing was checked.</summary>
    QueueFull,

    /// <summary>The verification did not finish within the wait allowed.</summary>
    QueueTimeout,
}

/// <summary>What a login cost: nothing checked (anonymous, refused before), a remembered login, or PBKDF2.</summary>
public enum FtpPasswordCheck
{
    None,
    Cache,
    Hash,
}

/// <summary>The decision on one USER/PASS pair; <see cref="User"/> is the account logged in to (anonymous as a read-only one).</summary>
public readonly record struct FtpLogin(FtpLoginOutcome Outcome, FtpPasswordCheck Check, FtpUser? User = null)
{
    /// <summary>The outcome as a metric tag: <c>ok</c>, <c>failed</c>, <c>locked_out</c>, <c>queue_full</c>, <c>queue_timeout</c>.</summary>
    public string OutcomeName => Outcome switch
    {
        FtpLoginOutcome.Ok => ProtocolOutcomes.Ok,
        FtpLoginOutcome.Failed => "failed",
        FtpLoginOutcome.LockedOut => "locked_out",
        FtpLoginOutcome.QueueFull => "queue_full",
        _ => "queue_timeout",
    };

    /// <summary>The check as a metric tag: <c>none</c>, <c>cache</c>, <c>hash</c>.</summary>
    public string CheckName => Check switch
    {
        FtpPasswordCheck.Cache => "cache",
        FtpPasswordCheck.Hash => "hash",
        _ => "none",
    };
}

/// <summary>
/// Decides a USER/PASS pair, in this order: the address's lockout, anonymous, the login cache, then PBKDF2 on the
/// password verifier's threads. A name that does not exist is verified too, against a decoy hash of the same cost, so neither the
/// answer nor its timing tells which names exist. Only a failed verification counts against the address.
/// </summary>
public sealed class FtpAuthenticator
{
    private static readonly string[] AnonymousNames = ["anonymous", "ftp"];

    private readonly FtpOptions _options;
    private readonly FtpLoginGuard _guard;
    private readonly FtpLoginCache _cache;
    private readonly FtpPasswordVerifier _verifier;
    private readonly Dictionary<string, FtpUser> _users;
    private readonly string _decoyHash;

    public FtpAuthenticator(FtpOptions options, FtpLoginGuard guard, FtpLoginCache cache, FtpPasswordVerifier verifier)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _guard = guard;
        _cache = cache;
        _verifier = verifier;
        _users = options.Users.ToDictionary(u => u.Name, StringComparer.Ordinal);
        _decoyHash = FtpPasswordHasher.Decoy(options.Users.Select(u => u.PasswordHash));
    }

    /// <summary>Whether <paramref name="name"/> logs in anonymously here (any password, read-only).</summary>
    public bool IsAnonymous(string name) => _options.AllowAnonymous && AnonymousNames.Contains(name, StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Decides the login. Throws <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/>
    /// fires while the verification waits (the connection is ending).
    /// </summary>
    public async Task<FtpLogin> LogInAsync(IPAddress address, string name, string password, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(password);
        if (_guard.IsLockedOut(address))
        {
            _guard.Failed(address);
            return new FtpLogin(FtpLoginOutcome.LockedOut, FtpPasswordCheck.None);
        }

        if (IsAnonymous(name))
        {
            return new FtpLogin(FtpLoginOutcome.Ok, FtpPasswordCheck.None, new FtpUser(name, "", ReadOnly: true, Home: _options.AnonymousHome));
        }

        var user = _users.GetValueOrDefault(name);
        var hash = user?.PasswordHash ?? _decoyHash;
        if (user is not null && _cache.Remembers(name, hash, password))
        {
            return new FtpLogin(FtpLoginOutcome.Ok, FtpPasswordCheck.Cache, user);
        }

        switch (await _verifier.VerifyAsync(password, hash, _options.LoginQueueTimeout, cancellationToken))
        {
            case FtpVerification.QueueFull:
                return new FtpLogin(FtpLoginOutcome.QueueFull, FtpPasswordCheck.None);
            case FtpVerification.TimedOut:
                return new FtpLogin(FtpLoginOutcome.QueueTimeout, FtpPasswordCheck.None);
            case FtpVerification.Matched when user is not null:
                _cache.Remember(name, hash, password);
                return new FtpLogin(FtpLoginOutcome.Ok, FtpPasswordCheck.Hash, user);
            default:
                _guard.Failed(address);
                return new FtpLogin(FtpLoginOutcome.Failed, FtpPasswordCheck.Hash);
        }
    }
}
