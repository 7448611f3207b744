using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Listeners;

/// <summary>
/// Every listen socket and in-process model listener of this process, so that a drain can stop the protocol
/// listeners accepting while the admin endpoint keeps serving (Kestrel can only stop all its endpoints at
/// once). New clients are then refused by the kernel, as nginx's are once it closes its listen sockets.
/// </summary>
/// <remarks>
/// Kestrel's socket transport treats a listen socket closed under its accept loop as an unbound listener
/// (the accept returns "done" and the loop ends), and unbinding it again at shutdown is harmless.
/// </remarks>
public sealed class AcceptStopper
{
    private readonly List<Socket> _sockets = [];
    private readonly List<IConnectionListener> _listeners = [];

    /// <summary>A listen socket Kestrel's socket transport made (see GatewayHost's CreateBoundListenSocket).</summary>
    public void Track(Socket socket)
    {
        lock (_sockets)
        {
            _sockets.Add(socket);
        }
    }

    /// <summary>A listener of an in-process model.</summary>
    public void Track(IConnectionListener listener)
    {
        lock (_sockets)
        {
            _listeners.Add(listener);
        }
    }

    /// <summary>Stops every tracked listener but the sockets bound to <paramref name="keepPorts"/> (the admin endpoint).</summary>
    public async Task StopAsync(IReadOnlySet<int> keepPorts)
    {
        Socket[] sockets;
        IConnectionListener[] listeners;
        lock (_sockets)
        {
            sockets = [.. _sockets];
            listeners = [.. _listeners];
        }

        foreach (var socket in sockets)
        {
            int? port;
            try
            {
                port = (socket.LocalEndPoint as IPEndPoint)?.Port;
            }
            catch (ObjectDisposedException)
            {
                continue; // unbound already
            }

            if (port is { } bound && !keepPorts.Contains(bound))
            {
                socket.Dispose();
            }
        }

        foreach (var listener in listeners)
        {
            await listener.UnbindAsync();
        }
    }
}
