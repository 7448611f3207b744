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
    private Socket? _listener;
    private IPEndPoint? _activeTarget;

    public bool IsReady => _listener is not null || _activeTarget is not null;

    /// <summary>Listens on a free port of the passive range, on <paramref name="localAddress"/>; returns the bound endpoint.</summary>
    public IPEndPoint ListenPassive(IPAddress localAddress, FtpOptions options)
    {
        Reset();
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
                _listener = socket;
                return (IPEndPoint)socket.LocalEndPoint!;
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
            {
                socket.Dispose();
            }
        }

        throw new IOException($"no free port in the passive range {options.PassivePortMin}-{options.PassivePortMax}");
    }

    public void SetActive(IPEndPoint target)
    {
        Reset();
        _activeTarget = target;
    }

    /// <summary>
    /// The data connection: accepts the passive one from <paramref name="peer"/> (others are closed and the
    /// wait goes on) or connects to the active target. The setup is used up either way.
    /// </summary>
    public async Task<Socket> OpenAsync(IPAddress peer, TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        var listener = _listener;
        var target = _activeTarget;
        _listener = null;
        _activeTarget = null;
        try
        {
            if (listener is not null)
            {
                while (true)
                {
                    var socket = await listener.AcceptAsync(deadline.Token);
                    if (SameAddress(((IPEndPoint)socket.RemoteEndPoint!).Address, peer))
                    {
                        return socket;
                    }

                    socket.Dispose(); // someone else's connection: drop it, keep waiting for the client's
                }
            }

            if (target is null)
            {
                throw new InvalidOperationException("no data connection was set up");
            }

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
        finally
        {
            listener?.Dispose();
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
        _listener?.Dispose();
        _listener = null;
        _activeTarget = null;
    }
}
