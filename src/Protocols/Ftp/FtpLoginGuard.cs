using System.Collections.Concurrent;
using System.Net;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Failed logins per client address, shared by every session: after too many within the lockout window the
/// address may not log in until the window has passed (vsftpd's and fail2ban's idea, in process).
/// </summary>
public sealed class FtpLoginGuard(FtpOptions options)
{
    private readonly ConcurrentDictionary<IPAddress, (int Failures, long WindowStart)> _failures = new();

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

        return entry.Failures >= options.MaxLoginFailuresPerAddress;
    }

    public void Failed(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        var now = Environment.TickCount64;
        _failures.AddOrUpdate(address, (1, now), (_, e) => Expired(e.WindowStart) ? (1, now) : (e.Failures + 1, e.WindowStart));
    }

    public void Succeeded(IPAddress address) => _failures.TryRemove(address, out _);

    private bool Expired(long windowStart) => Environment.TickCount64 - windowStart > (long)options.LockoutDuration.TotalMilliseconds;
}
