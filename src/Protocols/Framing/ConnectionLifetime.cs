using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.Protocols.Framing;

/// <summary>How a handler follows its connection's life: graceful close requests and the ordinary ends.</summary>
public static class ConnectionLifetime
{
    /// <summary>Cancelled when the host asks the connection to close gracefully (shutdown, admin close).</summary>
    public static CancellationToken CloseRequested(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested ?? CancellationToken.None;
    }

    /// <summary>
    /// On a close request, wakes a pending read of the transport's input with <c>IsCanceled</c>, so a handler
    /// waiting for the next message stops waiting and can finish cleanly. Dispose the result when done.
    /// </summary>
    public static CancellationTokenRegistration CancelReadsOnCloseRequest(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return CancelReadsOnCloseRequest(connection, connection.Transport.Input);
    }

    /// <summary>The same for another reader of the connection's bytes (the TLS one after FTP's AUTH TLS).</summary>
    public static CancellationTokenRegistration CancelReadsOnCloseRequest(ConnectionContext connection, PipeReader input) =>
        CloseRequested(connection).Register(static state => ((PipeReader)state!).CancelPendingRead(), input);

    /// <summary>
    /// The connection's graceful close request, read once per connection: from the transport's
    /// <see cref="ICloseRequestWakeFeature"/> when it has one, else from the lifetime feature's token.
    /// </summary>
    public static CloseRequest CloseRequestOf(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return connection.Features.Get<ICloseRequestWakeFeature>() is { } transport ? new CloseRequest(transport, default) : new CloseRequest(null, CloseRequested(connection));
    }

    /// <summary>The ordinary ways a connection ends mid-read or mid-write, which a handler ends quietly.</summary>
    public static bool IsExpectedEnd(Exception exception, IdleTimeout idle, ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(idle);
        ArgumentNullException.ThrowIfNull(connection);
        return exception switch
        {
            // The peer reset the connection, or the host aborted it (grace period over, admin close).
            ConnectionResetException or ConnectionAbortedException => true,
            // Our idle timer fired, or a wait tied to the connection's life ended with it.
            OperationCanceledException => idle.HasExpired || connection.ConnectionClosed.IsCancellationRequested,
            _ => false,
        };
    }
}

/// <summary>A connection's graceful close request, however its transport signals it (<see cref="ConnectionLifetime.CloseRequestOf"/>).</summary>
public readonly struct CloseRequest
{
    private readonly ICloseRequestWakeFeature? _transport;
    private readonly CancellationToken _token;

    internal CloseRequest(ICloseRequestWakeFeature? transport, CancellationToken token)
    {
        _transport = transport;
        _token = token;
    }

    public bool IsRequested => _transport?.IsCloseRequested ?? _token.IsCancellationRequested;

    /// <summary>
    /// On a close request, wakes a pending read of <paramref name="input"/> with <c>IsCanceled</c>, so a handler
    /// waiting for the next message stops waiting and can finish cleanly. Dispose the result when done.
    /// </summary>
    public CloseRequestWake WakeReads(PipeReader input)
    {
        ArgumentNullException.ThrowIfNull(input);
        if (_transport is { } transport)
        {
            transport.WakeOnCloseRequest(input);
            return default;
        }

        return new CloseRequestWake(_token.Register(static state => ((PipeReader)state!).CancelPendingRead(), input));
    }
}

/// <summary>
/// What <see cref="CloseRequest.WakeReads"/> set up; disposing it stops a token's wake-up (a transport's lasts the
/// connection's life: see <see cref="ICloseRequestWakeFeature.WakeOnCloseRequest"/>).
/// </summary>
public readonly struct CloseRequestWake(CancellationTokenRegistration registration) : IDisposable
{
    public void Dispose() => registration.Dispose();
}
