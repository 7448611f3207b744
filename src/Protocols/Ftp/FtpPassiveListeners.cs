using System.Collections.Concurrent;
using System.Net;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Pending passive listeners per client address, shared by every session of a listener: one address may hold at
/// most <see cref="FtpOptions.MaxPassiveListenersPerAddress"/> ports of the range waiting for a data connection,
/// so a party that opens many sessions and sends PASV in each cannot take the whole range from everyone else.
/// (One session holds at most one: a new PASV closes its last.)
/// </summary>
public sealed class FtpPassiveListeners(FtpOptions options)
{
    private readonly ConcurrentDictionary<IPAddress, int> _pending = new();

    /// <summary>Takes one of the address's places; false when it holds as many as it may.</summary>
    public bool TryReserve(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        while (true)
        {
            var held = _pending.GetValueOrDefault(address);
            if (held >= options.MaxPassiveListenersPerAddress)
            {
                return false;
            }

            if (held == 0 ? _pending.TryAdd(address, 1) : _pending.TryUpdate(address, held + 1, held))
            {
                return true;
            }
        }
    }

    /// <summary>Gives a place back (its listener has closed).</summary>
    public void Release(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        while (_pending.TryGetValue(address, out var held))
        {
            if (held <= 1 ? _pending.TryRemove(KeyValuePair.Create(address, held)) : _pending.TryUpdate(address, held - 1, held))
            {
                return;
            }
        }
    }

    /// <summary>Places held by <paramref name="address"/> now (for tests and the admin view).</summary>
    public int Held(IPAddress address) => _pending.GetValueOrDefault(address);
}
