using System.Net;
using System.Net.Sockets;

namespace Gateway.LoadGen;

internal static class Tcp
{
    // IP_BIND_ADDRESS_NO_PORT (Linux): bind the address now, choose the port at connect, by the whole 4-tuple.
    // Without it bind() searches for a port no other socket on that address holds (TIME_WAIT ones included),
    // which gets slow over thousands of sockets and runs out after a few runs in a row.
    private const int IpBindAddressNoPort = 24;

    /// <summary>A connected socket with Nagle off, bound first to <paramref name="source"/> (port 0) when given.</summary>
    public static async Task<Socket> ConnectAsync(IPEndPoint endpoint, IPAddress? source = null, CancellationToken cancellation = default)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (source is not null)
            {
                if (OperatingSystem.IsLinux() && source.AddressFamily == AddressFamily.InterNetwork)
                {
                    socket.SetRawSocketOption((int)SocketOptionLevel.IP, IpBindAddressNoPort, BitConverter.GetBytes(1));
                }

                socket.Bind(new IPEndPoint(source, 0));
            }

            await socket.ConnectAsync(endpoint, cancellation);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
