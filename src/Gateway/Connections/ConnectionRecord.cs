using System.Net;
using Gateway.Protocols;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.Connections;

/// <summary>
/// A live connection in the registry. Its counters are written by the connection's own read and write paths
/// (one writer each, Interlocked for the readers that list them), so nothing on the data path is shared
/// between connections. It is also the connection's <see cref="IProtocolActivityFeature"/>.
/// </summary>
public sealed partial class ConnectionRecord : IProtocolActivityFeature
{
    private const int Open = 0, Closing = 1;

    /// <summary>One log line per limit per interval, whichever connection hits it (names come from a fixed set).</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, LogThrottle> LimitLogs = new();

    private readonly ConnectionContext _connection;
    private readonly RecordSinks _sinks;
    private readonly ITransportTrafficFeature? _traffic;
    private readonly long _connectedTick;
    private readonly long _connectedAtTicks;
    private long _messages;
    private int _state;

    /// <summary>
    /// The record of <paramref name="connection"/>, whose bytes <paramref name="traffic"/> counts (the transport
    /// itself, or the middleware's <see cref="CountingDuplexPipe"/>; none: nothing is counted).
    /// </summary>
    public ConnectionRecord(long number, string id, ListenerStats listener, ConnectionContext connection, ITransportTrafficFeature? traffic,
        GatewayMetrics? metrics = null, ILogger? logger = null)
        : this(number, id, listener, connection, traffic, new RecordSinks(metrics, logger))
    {
    }

    /// <summary>A record reporting to <paramref name="sinks"/>, which the registry shares among its records.</summary>
    internal ConnectionRecord(long number, string id, ListenerStats listener, ConnectionContext connection, ITransportTrafficFeature? traffic, RecordSinks sinks)
    {
        ArgumentNullException.ThrowIfNull(connection);
        Number = number;
        Id = id;
        Listener = listener;
        ListenerPort = (connection.LocalEndPoint as IPEndPoint)?.Port ?? listener.Port;
        _connection = connection;
        _traffic = traffic;
        _sinks = sinks;
        _connectedAtTicks = DateTime.UtcNow.Ticks;
        _connectedTick = Environment.TickCount64;
    }

    /// <summary>Order of arrival; the default sort.</summary>
    public long Number { get; }

    public string Id { get; }

    public ListenerStats Listener { get; }

    public int ListenerPort { get; }

    /// <summary>The connection this records.</summary>
    internal ConnectionContext Connection => _connection;

    /// <summary>
    /// The client's address and port as shown and filtered; made when asked from the connection's (an idle
    /// connection keeps no strings, and on the in-process models no end point objects either).
    /// </summary>
    public string Remote => Plain(_connection.RemoteEndPoint)?.ToString() ?? "";

    public string Local => Plain(_connection.LocalEndPoint)?.ToString() ?? "";

    public DateTimeOffset ConnectedAt => new(_connectedAtTicks, TimeSpan.Zero);

    /// <summary>The connection's last byte either way, or its start.</summary>
    public long LastActivityTick => Math.Max(_connectedTick, _traffic?.LastActivityTick ?? 0);

    public long BytesIn => _traffic?.BytesReceived ?? 0;

    public long BytesOut => _traffic?.BytesSent ?? 0;

    public long Messages => Interlocked.Read(ref _messages);

    public bool IsClosing => Volatile.Read(ref _state) == Closing;

    public void MessageHandled(string operation, string outcome, double seconds)
    {
        Interlocked.Increment(ref _messages);
        _sinks.Metrics?.MessageHandled(Listener, operation, outcome, seconds);
    }

    /// <summary>
    /// An IPv4 client on a dual-stack listener (the default "*") arrives as ::ffff:a.b.c.d; it is shown and
    /// filtered as the a.b.c.d:port it is, as nginx and Redis show it.
    /// </summary>
    public static EndPoint? Plain(EndPoint? endpoint) =>
        endpoint is IPEndPoint { Address.IsIPv4MappedToIPv6: true } ip ? new IPEndPoint(ip.Address.MapToIPv4(), ip.Port) : endpoint;

    public void Faulted(string operation, Exception exception)
    {
        if (_sinks.Logger is { } logger)
        {
            LogFault(logger, exception, Listener.Protocol, Id, Remote, operation);
        }
    }

    public void Abandoned(string operation) => _sinks.Metrics?.Abandoned(Listener, operation);

    public void TransferEnded(string direction, long bytes, string outcome) =>
        _sinks.Metrics?.TransferEnded(Listener, direction, bytes, outcome);

    public void TlsHandshakeEnded(string channel, bool succeeded) =>
        _sinks.Metrics?.TlsHandshakeEnded(Listener, channel, succeeded);

    public void LimitReached(string limit)
    {
        _sinks.Metrics?.LimitReached(Listener, limit);
        if (_sinks.Logger is { } logger && LimitLogs.GetOrAdd(limit, static _ => new LogThrottle(TimeSpan.FromSeconds(10))).TryTake(out var count))
        {
            LogLimitReached(logger, limit, count, Listener.Protocol, Remote);
        }
    }

    public void LoginEnded(string outcome, string check) =>
        _sinks.Metrics?.LoginEnded(Listener, outcome, check);

    public Func<IReadOnlyDictionary<string, string?>>? Details { get; set; }

    /// <summary>
    /// Kestrel's two phases for one connection: ask it to close (the protocol finishes its request in progress
    /// and says goodbye in its own way), then abort it if it is still there after <paramref name="grace"/>.
    /// False when a close is already under way. <paramref name="reason"/> is what an abort is logged with.
    /// </summary>
    public bool RequestClose(string reason, TimeSpan grace)
    {
        if (Interlocked.CompareExchange(ref _state, Closing, Open) != Open)
        {
            return false;
        }

        if (_connection.Features.Get<IConnectionLifetimeNotificationFeature>() is { } lifetime)
        {
            lifetime.RequestClose();
            _ = AbortAfterAsync(grace, reason);
        }
        else
        {
            Abort(reason);
        }

        return true;
    }

    /// <summary>Closes the connection now, whatever it is doing.</summary>
    public void Abort(string reason) => _connection.Abort(new ConnectionAbortedException(reason));

    private async Task AbortAfterAsync(TimeSpan grace, string reason)
    {
        try
        {
            await Task.Delay(grace, _connection.ConnectionClosed);
            Abort(reason);
        }
        catch (OperationCanceledException)
        {
            // It closed within the grace period.
        }
        catch (ObjectDisposedException)
        {
            // It closed and was disposed within the grace period.
        }
    }

    public ConnectionSnapshot Snapshot(long nowTick)
    {
        var last = LastActivityTick;
        return new ConnectionSnapshot(
            Id, Listener.Protocol, ListenerPort, Listener.Model, Listener.ModelFeature.Worker, Remote, Local,
            ConnectedAt, ConnectedAt.AddMilliseconds(last - _connectedTick),
            AgeSeconds: Math.Round((nowTick - _connectedTick) / 1000.0, 3),
            IdleSeconds: Math.Round(Math.Max(0, nowTick - last) / 1000.0, 3),
            BytesIn, BytesOut, Messages, IsClosing ? "closing" : "open", Details?.Invoke());
    }

    [LoggerMessage(EventId = 41, Level = LogLevel.Warning,
        Message = "Limit {Limit} reached {Count} time(s) since the last report (latest: {Protocol} connection from {Remote})")]
    private static partial void LogLimitReached(ILogger logger, string limit, long count, string protocol, string remote);

    [LoggerMessage(EventId = 40, Level = LogLevel.Error,
        Message = "{Protocol} connection {Id} from {Remote}: {Operation} failed in the gateway's own code; answered with an error, the connection goes on")]
    private static partial void LogFault(ILogger logger, Exception exception, string protocol, string id, string remote, string operation);
}

/// <summary>Where records report (metrics, log): one object for all of a registry's records, not two fields in each.</summary>
internal sealed record RecordSinks(GatewayMetrics? Metrics, ILogger? Logger);
