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

    private readonly ConnectionContext? _connection;
    private readonly GatewayMetrics? _metrics;
    private readonly ITransportTrafficFeature? _traffic;
    private readonly ILogger? _logger;
    private readonly EndPoint? _remote;
    private readonly EndPoint? _local;
    private readonly long _connectedTick;
    private long _lastActivityTick;
    private long _bytesIn;
    private long _bytesOut;
    private long _messages;
    private int _state;

    public ConnectionRecord(long number, string id, ListenerStats listener, EndPoint? remote, EndPoint? local,
        ConnectionContext? connection = null, GatewayMetrics? metrics = null, ILogger? logger = null)
    {
        Number = number;
        Id = id;
        Listener = listener;
        _remote = remote;
        _local = local;
        ListenerPort = (local as IPEndPoint)?.Port ?? listener.Port;
        _connection = connection;
        _traffic = connection?.Features.Get<ITransportTrafficFeature>();
        _metrics = metrics;
        _logger = logger;
        ConnectedAt = DateTimeOffset.UtcNow;
        _connectedTick = _lastActivityTick = Environment.TickCount64;
    }

    /// <summary>Order of arrival; the default sort.</summary>
    public long Number { get; }

    public string Id { get; }

    public ListenerStats Listener { get; }

    public int ListenerPort { get; }

    /// <summary>The client's address and port as shown and filtered; made when asked (an idle connection keeps no strings).</summary>
    public string Remote => Plain(_remote)?.ToString() ?? "";

    public string Local => Plain(_local)?.ToString() ?? "";

    public DateTimeOffset ConnectedAt { get; }

    /// <summary>The transport counts this connection's bytes itself; nothing needs to wrap its pipes.</summary>
    public bool CountedByTransport => _traffic is not null;

    public long LastActivityTick => Math.Max(Volatile.Read(ref _lastActivityTick), _traffic?.LastActivityTick ?? 0);

    public long BytesIn => _traffic?.BytesReceived ?? Interlocked.Read(ref _bytesIn);

    public long BytesOut => _traffic?.BytesSent ?? Interlocked.Read(ref _bytesOut);

    public long Messages => Interlocked.Read(ref _messages);

    public bool IsClosing => Volatile.Read(ref _state) == Closing;

    internal void Received(long bytes)
    {
        Interlocked.Add(ref _bytesIn, bytes);
        Volatile.Write(ref _lastActivityTick, Environment.TickCount64);
    }

    internal void Sent(long bytes)
    {
        Interlocked.Add(ref _bytesOut, bytes);
        Volatile.Write(ref _lastActivityTick, Environment.TickCount64);
    }

    public void MessageHandled(string operation, string outcome, double seconds)
    {
        Interlocked.Increment(ref _messages);
        _metrics?.MessageHandled(Listener, operation, outcome, seconds);
    }

    /// <summary>
    /// An IPv4 client on a dual-stack listener (the default "*") arrives as ::ffff:a.b.c.d; it is shown and
    /// filtered as the a.b.c.d:port it is, as nginx and Redis show it.
    /// </summary>
    public static EndPoint? Plain(EndPoint? endpoint) =>
        endpoint is IPEndPoint { Address.IsIPv4MappedToIPv6: true } ip ? new IPEndPoint(ip.Address.MapToIPv4(), ip.Port) : endpoint;

    public void Faulted(string operation, Exception exception)
    {
        if (_logger is not null)
        {
            LogFault(_logger, exception, Listener.Protocol, Id, Remote, operation);
        }
    }

    public void Abandoned(string operation) => _metrics?.Abandoned(Listener, operation);

    public void TransferEnded(string direction, long bytes, string outcome) =>
        _metrics?.TransferEnded(Listener, direction, bytes, outcome);

    public void TlsHandshakeEnded(string channel, bool succeeded) =>
        _metrics?.TlsHandshakeEnded(Listener, channel, succeeded);

    public void LimitReached(string limit)
    {
        _metrics?.LimitReached(Listener, limit);
        if (_logger is not null && LimitLogs.GetOrAdd(limit, static _ => new LogThrottle(TimeSpan.FromSeconds(10))).TryTake(out var count))
        {
            LogLimitReached(_logger, limit, count, Listener.Protocol, Remote);
        }
    }

    public void LoginEnded(string outcome, string check) =>
        _metrics?.LoginEnded(Listener, outcome, check);

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

        if (_connection?.Features.Get<IConnectionLifetimeNotificationFeature>() is { } lifetime)
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
    public void Abort(string reason) => _connection?.Abort(new ConnectionAbortedException(reason));

    private async Task AbortAfterAsync(TimeSpan grace, string reason)
    {
        try
        {
            await Task.Delay(grace, _connection!.ConnectionClosed);
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
