using System.Net;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// A reactor model on one address: N reactor threads, each with its own listen socket on the same port
/// (SO_REUSEPORT: the kernel spreads connections across them). Each reactor starts the listener's pipeline for
/// what it accepts itself (<see cref="ConnectionDispatcher"/>); Kestrel binds and unbinds the listener, and its
/// accept loop here only waits for the unbinding.
/// </summary>
internal sealed class ReactorListener : IConnectionListener
{
    private readonly TaskCompletionSource _unbound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConnectionDispatcher _dispatcher;
    private readonly Reactor[] _reactors;

    public ReactorListener(ModelEndPoint endpoint, int threads, Func<IReadiness> readiness, ReactorOptions options, ConnectionDispatcher dispatcher)
    {
        _dispatcher = dispatcher;
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

                reactors.Add(new Reactor(readiness(), socket, dispatcher.Start, options, $"{endpoint.Model} reactor {i} :{address.Port}"));
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

    /// <summary>Nothing is handed to Kestrel: its accept loop waits here until the listener is unbound.</summary>
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        await _unbound.Task.WaitAsync(cancellationToken);
        return null;
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        foreach (var reactor in _reactors)
        {
            reactor.StopListening();
        }

        _unbound.TrySetResult();
        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// The host is stopping (after its drain asked every connection to close): what is still open is aborted and
    /// waited for, as Kestrel does for the connections it dispatches, and then the reactor threads end.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        await UnbindAsync();
        await _dispatcher.StopAsync(() =>
        {
            foreach (var reactor in _reactors)
            {
                reactor.AbortAll();
            }
        });
        foreach (var reactor in _reactors)
        {
            reactor.Dispose();
        }
    }
}
