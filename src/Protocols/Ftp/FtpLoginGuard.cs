using System.Collections.Concurrent;
using System.Net;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Failed logins per client address, shared by every session: after too many within the lockout window the
/// address may not log in, with any account, until the window has passed (vsftpd's and fail2ban's idea, in
/// process). A successful login clears nothing, as with fail2ban: the count is the address's guesses, and a
/// guesser who can log in to some account (his own, anonymous) must not buy more guesses at another's password.
/// </summary>
public sealed class FtpLoginGuard
{
    /// <summary>Addresses tracked beyond which a new one first sweeps out those whose window has passed.</summary>
    private const int SweepAbove = 1024;

    private readonly ConcurrentDictionary<IPAddress, (int Failures, long WindowStart)> _failures = new();
    private readonly FtpOptions _options;
    private readonly TimeProvider _time;

    public FtpLoginGuard(FtpOptions options)
        : this(options, TimeProvider.System)
    {
    }

    internal FtpLoginGuard(FtpOptions options, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(options);
        _options = options;
        _time = time;
    }

    /// <summary>Addresses with failures on record (expired ones until the next sweep or look-up).</summary>
    internal int Tracked => _failures.Count;

    public bool IsLockedOut(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (!_failures.TryGetValue(address, out var entry))
        {
            return false;
        }

        if (Expired(entry.WindowStart))
        {
            _failures.TryRemove(KeyValuePair.Create(address, entry));
            return false;
        }

        return entry.Failures >= _options.MaxLoginFailuresPerAddress;
    }

    public void Failed(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var now = _time.GetTimestamp();
        if (_failures.Count >= SweepAbove && !_failures.ContainsKey(address))
        {
            Sweep();
        }

        _failures.AddOrUpdate(address, (1, now), (_, e) => Expired(e.WindowStart) ? (1, now) : (e.Failures + 1, e.WindowStart));
    }

    /// <summary>Forgets the addresses whose window has passed, so the table holds only the last window's guessers.</summary>
    private void Sweep()
    {
        foreach (var (address, entry) in _failures)
        {
            if (Expired(entry.WindowStart))
            {
                _failures.TryRemove(KeyValuePair.Create(address, entry));
            }
        }
    }

    private bool Expired(long windowStart) => _time.GetElapsedTime(windowStart) > _options.LockoutDuration;
}
