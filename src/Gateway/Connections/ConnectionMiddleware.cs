using System.Net;
using Gateway.Protocols;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Connections;

/// <summary>
/// The first step of every protocol connection: admit it or close it at once, record it in the registry,
/// count its bytes at the transport (unless the transport counts them itself), and give the protocol its
/// features (model, activity). Removed from the registry when the handler returns, whatever happened.
/// </summary>
public sealed class ConnectionMiddleware(ConnectionAdmission admission, ConnectionRegistry registry, GatewayMetrics metrics)
{
    public Func<ConnectionDelegate, ConnectionDelegate> For(ListenerStats listener) => next => async connection =>
    {
        var address = (ConnectionRecord.Plain(connection.RemoteEndPoint) as IPEndPoint)?.Address; // one client, one key, on any listener
        if (admission.TryAdmit(address) is { } reason)
        {
            listener.RejectedOne();
            metrics.Rejected(listener, reason);
            admission.LogRejection(connection.RemoteEndPoint);
            return; // Kestrel completes the transport: the client sees EOF
        }

        var transport = connection.Transport;
        ConnectionRecord? record = null;
        try
        {
            record = registry.Register(connection, listener, metrics);
            if (!record.CountedByTransport)
            {
                connection.Transport = new CountingDuplexPipe(transport, record);
            }

            connection.Features.Set(listener.ModelFeature);
            connection.Features.Set<IProtocolActivityFeature>(record);
            await next(connection);
        }
        finally
        {
            connection.Transport = transport;
            if (record is not null)
            {
                registry.Unregister(record);
            }

            admission.Release(address);
        }
    };
}
