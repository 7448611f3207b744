using System.Collections.Concurrent;
using System.Net;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// One reactor thread: its own listen socket (SO_REUSEPORT), its own readiness set, an eventfd through which
/// other threads hand it work. It accepts, reads every ready socket straight into that connection's input
/// pipe, and wakes senders whose socket can take output again. With <c>Gateway:Execution</c> inline, the
/// input pipe resumes its handler right here, within the read's flush: the request is handled and its reply
/// sent on this thread (run to completion); what may take long leaves the thread by itself (IoThread).
/// </summary>
internal sealed class Reactor : IDisposable
{
    private const int WakeToken = 0, ListenToken = 1, FirstConnectionToken = 2;
    private const int AcceptsPerWake = 64;
    private static readonly TimeSpan AcceptBackoff = TimeSpan.FromMilliseconds(100);

    private readonly IReadiness _readiness;
    private readonly ReactorOptions _options;
    private readonly FileDescriptor _wake = new((int)Libc.EventFd().ThrowIfFailed("eventfd"));
    private readonly ConcurrentQueue<(ReactorConnection? Connection, ReactorWork Work)> _work = new();
    private readonly Thread _thread;
    private ReactorConnection?[] _slots = new ReactorConnection?[64];
    private readonly Stack<int> _freeSlots = new();
    private List<ReactorConnection> _receiveLater = [], _receivingLater = [];
    private int _nextSlot = FirstConnectionToken;
    private FileDescriptor? _listener;
    private Action<ModelConnection>? _accepted;
    private int _wakePending;
    private volatile bool _stopping;
    private long _acceptPausedUntil;

    /// <param name="accepted">Starts a new connection's pipeline (on this reactor's thread).</param>
    /// <summary>The settings of this reactor's connections.</summary>
    public ReactorOptions Options => _options;

    public Reactor(IReadiness readiness, FileDescriptor listener, Action<ModelConnection> accepted, ReactorOptions options, string name)
    {
        _readiness = readiness;
        _options = options;
        _listener = listener;
        _accepted = accepted;
        _readiness.TryAdd(_wake, WakeToken, Interest.Read);
        _readiness.TryAdd(listener, ListenToken, Interest.Read);
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    public bool EdgeTriggered => _readiness.EdgeTriggered;

    /// <summary>Hands work to the reactor thread (from any thread) and wakes it.</summary>
    public void Post(ReactorConnection? connection, ReactorWork work)
    {
        _work.Enqueue((connection, work));
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            _ = Libc.Signal(_wake);
        }
    }

    /// <summary>Stops accepting: the listen socket is closed on the reactor thread.</summary>
    public void StopListening() => Post(null, ReactorWork.StopListening);

    /// <summary>Aborts every connection this reactor serves (the host is stopping; the drain has had its chance).</summary>
    public void AbortAll() => Post(null, ReactorWork.AbortAll);

    /// <summary>Ends the thread (after the listener has ended every connection) and waits for it.</summary>
    public void Dispose()
    {
        _stopping = true;
        Post(null, ReactorWork.Stop);
        if (Thread.CurrentThread != _thread)
        {
            _thread.Join();
        }

        _readiness.Dispose();
        _wake.Dispose();
        _listener?.Dispose();
    }

    public void ChangeInterest(ReactorConnection connection, Interest interest)
    {
        if (connection.Watched)
        {
            _readiness.Change(connection.Socket, connection.Token, interest);
        }
    }

    /// <summary>Stops watching a connection whose hang-up would otherwise be reported on every wait.</summary>
    public void Unwatch(ReactorConnection connection)
    {
        if (connection.Watched)
        {
            _readiness.Remove(connection.Socket, connection.Token);
            connection.Watched = false;
        }
    }

    public void Rewatch(ReactorConnection connection, Interest interest)
    {
        if (!connection.Watched)
        {
            _readiness.TryAdd(connection.Socket, connection.Token, interest);
            connection.Watched = true;
        }
    }

    private void Run()
    {
        Span<ReadyEvent> ready = new ReadyEvent[256];
        while (!_stopping)
        {
            // Connections that stopped at their read budget have bytes waiting: look at the others without
            // sleeping, then let them read on.
            var count = _readiness.Wait(ready, _receiveLater.Count > 0 ? 0 : AcceptTimeout());
            for (var i = 0; i < count && !_stopping; i++)
            {
                var e = ready[i];
                switch (e.Token)
                {
                    case WakeToken:
                        // Drain, then re-arm, then work: a Post after the re-arm signals again, and one before
                        // it queued its item before this DoWork runs. (Re-arming before the drain could swallow
                        // the signal of a Post that set the flag in between, and the reactor would sleep on it.)
                        _ = Libc.Drain(_wake);
                        Volatile.Write(ref _wakePending, 0);
                        DoWork();
                        break;
                    case ListenToken:
                        Accept();
                        break;
                    default:
                        if (_slots[e.Token] is { } connection)
                        {
                            Guarded(connection, static (c, e) => c.OnReady(e), e);
                        }

                        break;
                }
            }

            if (_receiveLater.Count > 0 && !_stopping)
            {
                (_receiveLater, _receivingLater) = (_receivingLater, _receiveLater);
                foreach (var connection in _receivingLater)
                {
                    Guarded(connection, static (c, _) => c.ReceiveMore(), 0);
                }

                _receivingLater.Clear();
            }

            if (_acceptPausedUntil > 0 && Environment.TickCount64 >= _acceptPausedUntil && _listener is not null)
            {
                _acceptPausedUntil = 0;
                _readiness.Change(_listener, ListenToken, Interest.Read);
                Accept();
            }
        }

        // The listener ended its connections before disposing the reactor; whatever is left goes now.
        foreach (var connection in _slots)
        {
            connection?.CloseOnReactor();
        }
    }

    private int AcceptTimeout() =>
        _acceptPausedUntil == 0 ? -1 : (int)Math.Clamp(_acceptPausedUntil - Environment.TickCount64, 0, int.MaxValue);

    private void DoWork()
    {
        while (_work.TryDequeue(out var item))
        {
            switch (item.Work)
            {
                case ReactorWork.StopListening when _listener is not null:
                    _readiness.Remove(_listener, ListenToken);
                    _listener.Dispose();
                    _listener = null;
                    _accepted = null;
                    break;
                case ReactorWork.Stop:
                    return;
                case ReactorWork.AbortAll:
                    foreach (var live in _slots)
                    {
                        if (live is not null)
                        {
                            Guarded(live, static (c, _) => c.Abort(new ConnectionAbortedException("the server is stopping")), 0);
                        }
                    }

                    break;
                default:
                    if (item.Connection is { } connection)
                    {
                        Guarded(connection, static (c, work) => c.DoWork(work), item.Work);
                    }

                    break;
            }
        }
    }

    private void Accept()
    {
        if (_listener is null || _accepted is null)
        {
            return;
        }

        for (var i = 0; i < AcceptsPerWake || EdgeTriggered; i++)
        {
            var result = NativeSocket.Accept(_listener, nonBlocking: true, out var socket);
            if (socket is null)
            {
                if (result.Error is Errno.TooManyFiles or Errno.TooManyFilesSystem or Errno.NoBuffers)
                {
                    // Out of descriptors: the connection waits in the backlog; stop watching the listen socket
                    // for a moment instead of spinning on it.
                    _options.OnAcceptFailed(result.ToException("accept4"));
                    _readiness.Change(_listener, ListenToken, Interest.None);
                    _acceptPausedUntil = Environment.TickCount64 + (long)AcceptBackoff.TotalMilliseconds;
                }

                return; // EAGAIN: no one else waiting; ECONNABORTED and the like: that client left already
            }

            var token = _freeSlots.Count > 0 ? _freeSlots.Pop() : _nextSlot++;
            if (token >= _slots.Length)
            {
                Array.Resize(ref _slots, _slots.Length * 2);
            }

            var connection = new ReactorConnection(this, socket, token);
            var interest = EdgeTriggered ? Interest.Read | Interest.Write : Interest.Read;
            if (!_readiness.TryAdd(socket, token, interest))
            {
                _freeSlots.Push(token);
                _options.OnRefused(connection.RemoteEndPoint as IPEndPoint, ModelRefusal.DescriptorPastSelectLimit, $"descriptor {socket.Number} is at or above FD_SETSIZE ({Libc.FdSetSize})");
                socket.Dispose();
                continue;
            }

            connection.Watched = true;
            _slots[token] = connection;
            _accepted(connection);
        }
    }

    /// <summary>
    /// Runs one connection's step; a fault there (a failed epoll_ctl, a bug) closes that connection and is
    /// reported, instead of ending the reactor thread and with it the process and every other connection.
    /// </summary>
    private void Guarded<T>(ReactorConnection connection, Action<ReactorConnection, T> step, T argument)
    {
        try
        {
            step(connection, argument);
        }
        catch (Exception e)
        {
            _options.OnFault(e);
            try
            {
                connection.Abort(new ConnectionAbortedException("the reactor failed on this connection", e));
                connection.CloseOnReactor();
            }
            catch (Exception again)
            {
                _options.OnFault(again);
            }
        }
    }

    /// <summary>An edge-triggered connection read its budget with bytes still waiting: it reads on after the others (reactor thread).</summary>
    internal void ReceiveLater(ReactorConnection connection) => _receiveLater.Add(connection);

    /// <summary>Forgets a closed connection (on the reactor thread).</summary>
    internal void Release(ReactorConnection connection)
    {
        Unwatch(connection);
        _slots[connection.Token] = null;
        _freeSlots.Push(connection.Token);
    }
}

internal enum ReactorWork
{
    ResumeReceive,
    WatchWrite,
    EndReceive,
    Close,
    StopListening,
    AbortAll,
    Stop,
}
