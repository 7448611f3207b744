using System.Net;
using Gateway.Protocols;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.Connections;

/// <summary>
/// The first step of every protocol connection: admit it or close it at once, record it in the registry,
/// count its bytes at the transport (unless the transport counts them itself), and give the protocol its
/// features (model, activity). Removed from the registry when the handler returns, whatever happened.
/// </summary>
public sealed class ConnectionMiddleware
{
    private readonly ConnectionAdmission _admission;
    private readonly ConnectionRegistry _registry;
    private readonly GatewayMetrics _metrics;
    private readonly Func<object, Task> _ended;

    public ConnectionMiddleware(ConnectionAdmission admission, ConnectionRegistry registry, GatewayMetrics metrics)
    {
        (_admission, _registry, _metrics) = (admission, registry, metrics);
        _ended = state =>
        {
            End((ConnectionRecord)state);
            return Task.CompletedTask;
        };
    }

    public Func<ConnectionDelegate, ConnectionDelegate> For(ListenerStats listener) => next => connection =>
    {
        var address = ClientAddress(connection); // one client, one key, on any listener
        if (_admission.TryAdmit(address) is { } reason)
        {
            listener.RejectedOne();
            _metrics.Rejected(listener, reason);
            _admission.LogRejection(connection.RemoteEndPoint);
            return Task.CompletedTask; // the transport is completed after the pipeline: the client sees EOF
        }

        // A transport that counts its own bytes (the in-process models) needs no wrapper around its pipes.
        var traffic = connection.Features.Get<ITransportTrafficFeature>();
        var counting = traffic is null ? new CountingDuplexPipe(connection.Transport) : null;
        ConnectionRecord record;
        try
        {
            record = _registry.Register(connection, listener, traffic ?? counting, _metrics);
            connection.Features.Set(listener.ModelFeature);
            connection.Features.Set<IProtocolActivityFeature>(record);
        }
        catch
        {
            _admission.Release(address);
            throw;
        }

        if (counting is null && connection.Features.Get<IConnectionCompleteFeature>() is { } completion)
        {
            // The end runs as the connection's completion callback, after the handler's task: an idle connection
            // keeps no suspended frame of this method beside the handler's own.
            completion.OnCompleted(_ended, record);
            return next(connection);
        }

        return ServeAsync(next, connection, record, counting);
    };

    /// <summary>The handler awaited here, with the transport's pipes wrapped in <paramref name="counting"/> while it runs.</summary>
    private async Task ServeAsync(ConnectionDelegate next, ConnectionContext connection, ConnectionRecord record, CountingDuplexPipe? counting)
    {
        var transport = connection.Transport;
        try
        {
            if (counting is not null)
            {
                connection.Transport = counting;
            }

            await next(connection);
        }
        finally
        {
            connection.Transport = transport;
            End(record);
        }
    }

    /// <summary>
    /// Unregisters and frees the admission slot of the client's address, read again: nothing sets a connection's
    /// remote end point after this middleware has admitted it.
    /// </summary>
    private void End(ConnectionRecord record)
    {
        _registry.Unregister(record);
        _admission.Release(ClientAddress(record.Connection));
    }

    private static IPAddress? ClientAddress(ConnectionContext connection) =>
        (ConnectionRecord.Plain(connection.RemoteEndPoint) as IPEndPoint)?.Address;
}
