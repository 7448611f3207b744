using System.Net;
using System.Threading.Channels;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// Kestrel's view of a reactor model on one address: N reactor threads, each with its own listen socket on
/// the same port (SO_REUSEPORT: the kernel spreads connections across them), feeding one accept queue.
/// </summary>
internal sealed class ReactorListener : IConnectionListener
{
    private readonly Channel<ConnectionContext> _accepted = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Reactor[] _reactors;

    public ReactorListener(ModelEndPoint endpoint, int threads, Func<IReadiness> readiness, ReactorOptions options)
    {
        var reactors = new List<Reactor>(threads);
        try
        {
            var address = endpoint.Address;
            for (var i = 0; i < threads; i++)
            {
                var socket = NativeSocket.Listen(address, nonBlocking: true, reusePort: true);
                if (i == 0)
                {
                    // Port 0: the others join the port the system chose for the first.
                    address = NativeSocket.LocalEndPoint(socket) ?? address;
                }

                reactors.Add(new Reactor(readiness(), socket, _accepted.Writer, options, $"{endpoint.Model} reactor {i} :{address.Port}"));
            }

            EndPoint = new ModelEndPoint(address, endpoint.Model, endpoint.ListenerKey);
        }
        catch
        {
            foreach (var reactor in reactors)
            {
                reactor.Dispose();
            }

            throw;
        }

        _reactors = [.. reactors];
    }

    public EndPoint EndPoint { get; }

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return await _accepted.Reader.ReadAsync(cancellationToken);
        }
        catch (ChannelClosedException)
        {
            return null; // unbound: Kestrel's accept loop ends
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        foreach (var reactor in _reactors)
        {
            reactor.StopListening();
        }

        _accepted.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync();
        while (_accepted.Reader.TryRead(out var never))
        {
            await never.DisposeAsync(); // accepted but never handed to Kestrel
        }

        foreach (var reactor in _reactors)
        {
            reactor.Dispose();
        }
    }
}
