using System.Collections.Concurrent;
using System.Net;
using Gateway.Listeners;
using Gateway.Protocols;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Connections;

/// <summary>
/// The first step of every protocol connection: enforce <c>MaxConnections</c> and <c>MaxConnectionsPerIp</c> at
/// accept time and tag the connection with its model. Excess connections are closed at once (the client
/// sees EOF) and counted; they never reach a handler.
/// </summary>
/// <remarks>
/// Our own count rather than Kestrel's <c>MaxConcurrentConnections</c>: Kestrel's limit is shared with the
/// admin endpoint, and an operator must still reach the admin API when the protocol ports are full.
/// </remarks>
public sealed partial class ConnectionAdmission(LimitsOptions limits, ILogger<ConnectionAdmission> logger)
{
    private static readonly TimeSpan RejectionLogInterval = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<IPAddress, int> _perAddress = new();
    private int _active;
    private long _accepted;
    private long _rejected;
    private long _rejectedSinceLog;
    private long _lastRejectionLog = -1; // Environment.TickCount64 of the last line; -1: none yet

    public int Active => Volatile.Read(ref _active);

    public long Accepted => Interlocked.Read(ref _accepted);

    public long Rejected => Interlocked.Read(ref _rejected);

    /// <summary>Connection middleware for one listener; <paramref name="model"/> tags its connections.</summary>
    public Func<ConnectionDelegate, ConnectionDelegate> For(string model)
    {
        var feature = new ServerModelFeature(model, Worker: null);
        return next => async connection =>
        {
            var address = (connection.RemoteEndPoint as IPEndPoint)?.Address;
            if (!TryAdmit(address))
            {
                NoteRejection(connection);
                return;
            }

            Interlocked.Increment(ref _accepted);
            connection.Features.Set<IServerModelFeature>(feature);
            try
            {
                await next(connection);
            }
            finally
            {
                Release(address);
            }
        };
    }

    private bool TryAdmit(IPAddress? address)
    {
        if (Interlocked.Increment(ref _active) > limits.MaxConnections)
        {
            Interlocked.Decrement(ref _active);
            return false;
        }

        if (limits.MaxConnectionsPerIp > 0 && address is not null)
        {
            var count = _perAddress.AddOrUpdate(address, 1, static (_, n) => n + 1);
            if (count > limits.MaxConnectionsPerIp)
            {
                Release(address);
                return false;
            }
        }

        return true;
    }

    private void Release(IPAddress? address)
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

    // One log line per burst: the first rejection, then at most one line per interval with the count.
    private void NoteRejection(ConnectionContext connection)
    {
        Interlocked.Increment(ref _rejected);
        Interlocked.Increment(ref _rejectedSinceLog);
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastRejectionLog);
        if ((last < 0 || now - last >= (long)RejectionLogInterval.TotalMilliseconds)
            && Interlocked.CompareExchange(ref _lastRejectionLog, now, last) == last)
        {
            LogRejected(logger, Interlocked.Exchange(ref _rejectedSinceLog, 0), connection.RemoteEndPoint?.ToString(),
                limits.MaxConnections, limits.MaxConnectionsPerIp);
        }
    }

    [LoggerMessage(EventId = 20, Level = LogLevel.Warning,
        Message = "Rejected {Count} connection(s) over the limits (latest from {Remote}; MaxConnections {Max}, MaxConnectionsPerIp {PerIp})")]
    private static partial void LogRejected(ILogger logger, long count, string? remote, int max, int perIp);
}
