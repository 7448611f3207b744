using System.Net;
using System.Net.Sockets;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// A session's data connection, set up by PASV/EPSV (we listen) or PORT/EPRT (we connect). This is the one
/// place in protocol code that opens sockets: FTP data connections are made by the protocol itself (RFC 959),
/// beside the control connection the host hands over, and they are plain sockets owned by the session.
/// </summary>
/// <remarks>
/// Security (vsftpd's defaults): a passive connection must come from the control connection's peer address,
/// others are dropped while the wait goes on (no PASV hijacking); an active target must be that same address
/// on a port of 1024 or more (no FTP bounce). IPv4-mapped IPv6 addresses compare as IPv4.
/// </remarks>
internal sealed class FtpDataChannel : IAsyncDisposable
{
    private PassiveListener? _passive;
    private IPEndPoint? _activeTarget;

    public bool IsReady => _passive is not null || _activeTarget is not null;

    /// <summary>
    /// Listens on a free port of the passive range, on <paramref name="localAddress"/>, for a connection from
    /// <paramref name="peer"/>; returns the bound endpoint, or null when the peer's address holds as many pending
    /// listeners as it may. Throws <see cref="IOException"/> when no port of the range is free.
    /// </summary>
    public IPEndPoint? ListenPassive(IPAddress localAddress, IPAddress peer, FtpOptions options, FtpPassiveListeners listeners)
    {
        Reset();
        if (!listeners.TryReserve(peer))
        {
            return null;
        }

        var address = Canonical(localAddress);
        var range = options.PassivePortMax - options.PassivePortMin + 1;
        var start = Random.Shared.Next(range);
        for (var i = 0; i < range; i++)
        {
            var port = options.PassivePortMin + ((start + i) % range);
            var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(new IPEndPoint(address, port));
                socket.Listen(1);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                socket.Dispose();
                continue;
            }
            catch
            {
                socket.Dispose();
                listeners.Release(peer);
                throw;
            }

            var bound = (IPEndPoint)socket.LocalEndPoint!;
            _passive = new PassiveListener(socket, peer, listeners, options.DataTimeout);
            return bound;
        }

        listeners.Release(peer);
        throw new IOException($"no free port in the passive range {options.PassivePortMin}-{options.PassivePortMax}");
    }

    public void SetActive(IPEndPoint target)
    {
        Reset();
        _activeTarget = target;
    }

    /// <summary>
    /// The data connection: the passive one from <paramref name="peer"/> (accepted as soon as it arrived; others
    /// are closed and the wait goes on) or a connection to the active target. The setup is used up either way.
    /// </summary>
    public async Task<Socket> OpenAsync(IPAddress peer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var passive = _passive;
        var target = _activeTarget;
        _passive = null;
        _activeTarget = null;
        if (passive is not null)
        {
            Socket? accepted;
            try
            {
                accepted = await passive.Connection.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                passive.Dispose();
                throw;
            }

            return accepted ?? throw new IOException("no data connection arrived in time");
        }

        if (target is null)
        {
            throw new InvalidOperationException("no data connection was set up");
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var active = new Socket(target.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await active.ConnectAsync(target, deadline.Token);
            return active;
        }
        catch
        {
            active.Dispose();
            throw;
        }
    }

    /// <summary>Whether PORT/EPRT may connect there: the client's own address, an unprivileged port.</summary>
    public static bool IsAllowedActiveTarget(IPEndPoint target, IPAddress peer) =>
        target.Port >= 1024 && SameAddress(target.Address, peer);

    public static bool SameAddress(IPAddress a, IPAddress b) => Canonical(a).Equals(Canonical(b));

    public static IPAddress Canonical(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    public ValueTask DisposeAsync()
    {
        Reset();
        return ValueTask.CompletedTask;
    }

    private void Reset()
    {
        _passive?.Dispose();
        _passive = null;
        _activeTarget = null;
    }

    /// <summary>
    /// A passive port from PASV on: it accepts the client's connection as soon as it arrives and then closes, so a
    /// port of the range is held only until then, or for the data timeout at most; its place with
    /// <see cref="FtpPassiveListeners"/> is given back when it closes.
    /// </summary>
    private sealed class PassiveListener : IDisposable
    {
        private readonly CancellationTokenSource _stop;
        private readonly IPAddress _peer;
        private readonly FtpPassiveListeners _listeners;
        private int _released;

        public PassiveListener(Socket listener, IPAddress peer, FtpPassiveListeners listeners, TimeSpan timeout)
        {
            _peer = peer;
            _listeners = listeners;
            _stop = new CancellationTokenSource(timeout);
            Connection = AcceptAsync(listener);
        }

        /// <summary>The client's data connection, or null when none came in time (or the wait was abandoned).</summary>
        public Task<Socket?> Connection { get; }

        /// <summary>Nobody will use this setup: stop waiting, and close a connection that arrived all the same.</summary>
        public void Dispose()
        {
            // The place is free from now on, not from whenever the cancelled accept gets round to it: the session's
            // next PASV may come at once.
            Release();
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // The wait is over already.
            }

            _ = Connection.ContinueWith(static done => done.Result?.Dispose(), CancellationToken.None,
                TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }

        private void Release()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                _listeners.Release(_peer);
            }
        }

        private async Task<Socket?> AcceptAsync(Socket listener)
        {
            try
            {
                while (true)
                {
                    var socket = await listener.AcceptAsync(_stop.Token);
                    if (SameAddress(((IPEndPoint)socket.RemoteEndPoint!).Address, _peer))
                    {
                        return socket;
                    }

                    socket.Dispose(); // someone else's connection (PASV hijacking): drop it, keep waiting for the client's
                }
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return null;
            }
            finally
            {
                listener.Dispose();
                Release();
                _stop.Dispose();
            }
        }
    }
}
