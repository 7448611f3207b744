using System.IO.Pipelines;
using System.Net;
using System.Threading.Channels;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// The blocking models: an accept thread blocks in accept(2) and gives every connection threads of its own
/// (<c>threads</c>), or serves one connection to its end before it accepts the next (<c>iterative</c>, the
/// loop server: the next client waits in the kernel's backlog meanwhile). A connection whose threads would not
/// fit in the process's <see cref="ThreadBudget"/>, or whose threads the system refuses, is closed at once and
/// reported as refused; the listener goes on.
/// </summary>
internal sealed class BlockingListener : IConnectionListener
{
    private readonly Channel<ConnectionContext> _accepted = Channel.CreateUnbounded<ConnectionContext>(new UnboundedChannelOptions { SingleReader = true });
    private readonly FileDescriptor _listener;
    private readonly PipeOptions _input;
    private readonly PipeOptions _output;
    private readonly bool _oneAtATime;
    private readonly bool _inherited;
    private readonly Action<Exception> _onAcceptFailed;
    private readonly Action<IPEndPoint?, ModelRefusal, string> _onRefused;
    private readonly ThreadBudget _threads;
    private readonly Thread _thread;
    private readonly CancellationTokenSource _unbound = new();

    public BlockingListener(ModelEndPoint endpoint, bool oneAtATime, PipeOptions input, PipeOptions output, ThreadBudget threads,
        Action<Exception> onAcceptFailed, Action<IPEndPoint?, ModelRefusal, string> onRefused)
    {
        _inherited = endpoint.InheritedSocket is not null;
        _listener = endpoint.InheritedSocket is { } inherited ? new FileDescriptor(inherited)
            : NativeSocket.Listen(endpoint.Address, nonBlocking: false, reusePort: false);
        var address = NativeSocket.LocalEndPoint(_listener) ?? endpoint.Address;
        EndPoint = new ModelEndPoint(address, endpoint.Model, endpoint.ListenerKey);
        _input = input;
        _output = output;
        _oneAtATime = oneAtATime;
        _onAcceptFailed = onAcceptFailed;
        _onRefused = onRefused;
        _threads = threads;
        _thread = new Thread(AcceptLoop) { IsBackground = true, Name = $"{endpoint.Model} accept :{address.Port}" };
        _thread.Start();
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
            return null;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        if (!_unbound.IsCancellationRequested)
        {
            _unbound.Cancel();
            if (!_inherited)
            {
                _ = Libc.Shutdown(_listener, Libc.ShutRdWr); // wakes the thread blocked in accept(2)
            }

            // A shared socket stays up for the other processes; its owner set SO_RCVTIMEO, so the blocked
            // accept(2) returns EAGAIN within a moment and the loop sees the unbind.
        }

        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync();
        _thread.Join();
        _listener.Dispose();
        while (_accepted.Reader.TryRead(out var never))
        {
            await never.DisposeAsync();
        }

        _unbound.Dispose();
    }

    private void AcceptLoop()
    {
        while (!_unbound.IsCancellationRequested)
        {
            var result = NativeSocket.Accept(_listener, nonBlocking: false, out var socket);
            if (socket is null)
            {
                if (result.Error is Errno.TooManyFiles or Errno.TooManyFilesSystem or Errno.NoBuffers && !_unbound.IsCancellationRequested)
                {
                    _onAcceptFailed(result.ToException("accept4"));
                    Thread.Sleep(100);
                }

                continue; // EINTR, ECONNABORTED (that client left), or the shutdown of an unbind
            }

            if (_inherited)
            {
                // Accepted sockets inherit the listener's SO_RCVTIMEO; this connection's reads must block.
                _ = Libc.SetTimeout(socket, Libc.SoRcvTimeo, TimeSpan.Zero);
            }

            if (!_threads.TryTake(ThreadConnection.ThreadsPerConnection))
            {
                _onRefused(NativeSocket.RemoteEndPoint(socket), ModelRefusal.MaxThreads,
                    $"{_threads.InUse} of at most {_threads.Max} connection threads in use (Gateway:Models:MaxThreads)");
                socket.Dispose();
                continue;
            }

            var connection = new ThreadConnection(socket, _input, _output, _threads);
            if (!connection.TryStart(out var refusal))
            {
                _onRefused(connection.RemoteEndPoint as IPEndPoint, ModelRefusal.NoThread,
                    $"the system refused to start a thread ({refusal.GetType().Name}): a PID limit such as the cgroup's pids.max? Gateway:Models:MaxThreads sets a cap below it");
                connection.DisposeAsync().AsTask().GetAwaiter().GetResult(); // both directions ended already: closes the socket at once
                continue;
            }

            if (!_accepted.Writer.TryWrite(connection))
            {
                connection.Abort(new ConnectionAbortedException("the listener is stopping"));
            }
            else if (_oneAtATime)
            {
                // The loop server: nothing else is accepted until this client is done.
                try
                {
                    connection.Closed.Wait(_unbound.Token);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
        }

        _accepted.Writer.TryComplete();
    }
}
