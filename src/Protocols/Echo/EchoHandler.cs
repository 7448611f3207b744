using System.Buffers;
using Gateway.Protocols.Framing;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Protocols.Echo;

/// <summary>
/// RFC 862: every byte received goes back, in order, until the client closes its side. Backpressure, not
/// buffering: the handler waits for each flush, so a client that never reads fills the output pipe, the
/// handler stops reading, the input pipe fills and the transport stops reading the socket.
/// </summary>
public sealed class EchoHandler(ProtocolLimits limits) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var input = connection.Transport.Input;
        var output = connection.Transport.Output;
        // Expiry wakes the read or the flush: a client that stops reading for the idle period is closed too.
        using var idle = new IdleTimeout(limits.IdleTimeout, input, output);
        // Graceful close (shutdown, admin): stop waiting for input, send back what was read, return.
        using var wakeOnClose = ConnectionLifetime.CloseRequestOf(connection).WakeReads(input);

        try
        {
            while (true)
            {
                idle.Arm();
                var read = await input.ReadAsync();
                idle.ThrowIfExpired();
                var buffer = read.Buffer;
                foreach (var segment in buffer)
                {
                    output.Write(segment.Span);
                }

                input.AdvanceTo(buffer.End);
                // Taken before the flush's await, so the read's result is not kept across it: what the
                // suspended method holds is what every idle connection costs.
                var ended = read.IsCompleted || read.IsCanceled;
                var flush = await output.FlushAsync();
                idle.ThrowIfExpired();
                if (ended || flush.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception e) when (ConnectionLifetime.IsExpectedEnd(e, idle, connection))
        {
            // The peer left, the host aborted the connection, or it sat idle: returning closes it.
        }
    }
}
