using System.Collections.Concurrent;
using System.Net;
using Gateway.Listeners;
using Gateway.Telemetry;

namespace Gateway.Connections;

/// <summary>
/// <c>MaxConnections</c> and <c>MaxConnectionsPerIp</c>, decided at accept time. Excess connections are closed
/// at once (the client sees EOF), counted with a reason, and logged once per burst.
/// </summary>
/// <remarks>
/// Our own count rather than Kestrel's <c>MaxConcurrentConnections</c>: Kestrel's limit is shared with the
/// admin endpoint, and an operator must still reach the admin API when the protocol ports are full.
/// </remarks>
public sealed partial class ConnectionAdmission(LimitsOptions limits, ILogger<ConnectionAdmission> logger)
{
    public const string OverMaxConnections = "max_connections";
    public const string OverMaxConnectionsPerIp = "max_connections_per_ip";

    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();
    private int _active;
    private readonly LogThrottle _rejections = new(TimeSpan.FromSeconds(10));

    /// <summary>Null when admitted (then call <see cref="Release"/> when it closes); else why not.</summary>
    public string? TryAdmit(IPAddress? address)
    {
        if (Interlocked.Increment(ref _active) > limits.MaxConnections)
        {
            Interlocked.Decrement(ref _active);
            return OverMaxConnections;
        }

        if (limits.MaxConnectionsPerIp > 0 && address is not null)
        {
            var count = _perAddress.AddOrUpdate(address, 1, static (_, n) => n + 1);
            if (count > limits.MaxConnectionsPerIp)
            {
                Release(address);
                return OverMaxConnectionsPerIp;
            }
        }

        return null;
    }

    public void Release(IPAddress? address)
    {
        Interlocked.Decrement(ref _active);
        if (limits.MaxConnectionsPerIp > 0 && address is not null)
        {
            // Remove the entry when it reaches zero so the map holds only addresses with live connections.
            while (_perAddress.TryGetValue(address, out var n))
            {
                if (n <= 1 ? _perAddress.TryRemove(KeyValuePair.Create(address, n)) : _perAddress.TryUpdate(address, n - 1, n))
                {
                    break;
                }
            }
        }
    }

    /// <summary>One log line per burst: the first rejection, then at most one line per interval with the count.</summary>
    public void LogRejection(EndPoint? remote)
    {
        if (_rejections.TryTake(out var count))
        {
            LogRejected(logger, count, remote?.ToString(),
                limits.MaxConnections, limits.MaxConnectionsPerIp);
        }
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning,
        Message = "Rejected {Count} connection(s) over the limits (latest from {Remote}; MaxConnections {Max}, MaxConnectionsPerIp {PerIp})")]
    private static partial void LogRejected(ILogger logger, long count, string? remote, int max, int perIp);
}
