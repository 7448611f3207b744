using System.Net;
using System.Threading.Channels;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// A reactor model on one address: N reactor threads, each with its own listen socket on the same port
/// (SO_REUSEPORT: the kernel spreads connections across them). With a <see cref="ConnectionDispatcher"/>, each
/// reactor starts the listener's pipeline for what it accepts itself, and Kestrel's accept loop here only waits
/// for the unbinding; without one, the reactors feed one accept queue that Kestrel takes its connections from.
/// </summary>
internal sealed class ReactorListener : IConnectionListener
{
    private readonly TaskCompletionSource _unbound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Channel<ConnectionContext>? _accepted;
    private readonly ConnectionDispatcher? _dispatcher;
    private readonly Reactor[] _reactors;

    public ReactorListener(ModelEndPoint endpoint, int threads, Func<IReadiness> readiness, ReactorOptions options, ConnectionDispatcher? dispatcher)
    {
        _dispatcher = dispatcher;
        Action<ModelConnection> accepted;
        if (dispatcher is not null)
        {
            accepted = dispatcher.Start;
        }
        else
        {
            var queue = _accepted = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });
            accepted = connection =>
            {
                if (!queue.Writer.TryWrite(connection))
                {
                    connection.Abort(new ConnectionAbortedException("the listener is stopping"));
                }
            };
        }

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

                reactors.Add(new Reactor(readiness(), socket, accepted, options, $"{endpoint.Model} reactor {i} :{address.Port}"));
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

    /// <summary>The next connection for Kestrel to dispatch; with a dispatcher, none: the wait ends with the unbinding.</summary>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        if (_accepted is null)
        {
            await _unbound.Task.WaitAsync(cancellationToken);
            return null;
        }

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

        _unbound.TrySetResult();
        _accepted?.Writer.TryComplete();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The host is stopping (after its drain asked every connection to close): what the dispatcher runs and is
    /// still open is aborted and waited for, as Kestrel does for the connections it dispatches (it has done so
    /// for its own by now), and then the reactor threads end.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await UnbindAsync();
        if (_accepted is not null)
        {
            while (_accepted.Reader.TryRead(out var never))
            {
                await never.DisposeAsync(); // accepted but never handed to Kestrel
            }
        }

        if (_dispatcher is not null)
        {
            await _dispatcher.StopAsync(() =>
            {
                foreach (var reactor in _reactors)
                {
                    reactor.AbortAll();
                }
            });
        }

        foreach (var reactor in _reactors)
        {
            reactor.Dispose();
        }
    }
}
