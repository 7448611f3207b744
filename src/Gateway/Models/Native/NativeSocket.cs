using System.Net;
using System.Net.Sockets;

namespace Gateway.Models.Native;

/// <summary>Socket set-up shared by the models: listen sockets, accepting, addresses.</summary>
internal static class NativeSocket
{
    private const int Backlog = 512; // Kestrel's default

    /// <summary>
    /// A listening TCP socket on <paramref name="endpoint"/>. IPv6 "any" also takes IPv4 (dual mode), as Kestrel
    /// does. <paramref name="reusePort"/> lets several sockets share the port (one per reactor thread); the
    /// kernel spreads new connections across them.
    /// </summary>
    public static FileDescriptor Listen(IPEndPoint endpoint, bool nonBlocking, bool reusePort)
    {
        var family = endpoint.AddressFamily == AddressFamily.InterNetwork ? Libc.AfInet : Libc.AfInet6;
        var type = Libc.SockStream | Libc.SockCloExec | (nonBlocking ? Libc.SockNonBlock : 0);
        var created = Libc.Socket(family, type, 0);
        if (created.Error == Errno.AddressFamilyNotSupported && endpoint.Address.Equals(IPAddress.IPv6Any))
        {
            // A kernel without IPv6: "every interface" means every IPv4 one, as Kestrel falls back too.
            endpoint = new IPEndPoint(IPAddress.Any, endpoint.Port);
            family = Libc.AfInet;
            created = Libc.Socket(family, type, 0);
        }

        var socket = new FileDescriptor((int)created.ThrowIfFailed("socket"));
        try
        {
            Libc.SetOption(socket, Libc.SolSocket, Libc.SoReuseAddr, 1).ThrowIfFailed("setsockopt(SO_REUSEADDR)");
            if (reusePort)
            {
                Libc.SetOption(socket, Libc.SolSocket, Libc.SoReusePort, 1).ThrowIfFailed("setsockopt(SO_REUSEPORT)");
            }

            // Urgent (out-of-band) bytes stay in the stream, so every byte a client sends reaches the handler
            // (accepted sockets inherit it), as on the Kestrel listeners.
            Libc.SetOption(socket, Libc.SolSocket, Libc.SoOobInline, 1).ThrowIfFailed("setsockopt(SO_OOBINLINE)");
            if (family == Libc.AfInet6)
            {
                Libc.SetOption(socket, Libc.IpProtoIpv6, Libc.Ipv6V6Only, endpoint.Address.Equals(IPAddress.IPv6Any) ? 0 : 1)
                    .ThrowIfFailed("setsockopt(IPV6_V6ONLY)");
            }

            Span<byte> address = stackalloc byte[NativeEndPoint.MaxLength];
            var length = NativeEndPoint.Write(endpoint, address);
            var bound = Libc.Bind(socket, address[..length]);
            if (!bound.Ok)
            {
                // The same words Kestrel uses, so the host's one-line bind failure applies to every model.
                throw new IOException($"Failed to bind to address {endpoint}: {(bound.Error == Errno.AddressInUse ? "address already in use" : bound.ToException("bind").Message)}.",
                    bound.ToException("bind"));
            }

            Libc.Listen(socket, Backlog).ThrowIfFailed("listen");
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Accepts one connection: the descriptor, or the errno (WouldBlock when none is waiting).</summary>
    public static NativeResult Accept(FileDescriptor listener, bool nonBlocking, out FileDescriptor? connection)
    {
        Span<byte> address = stackalloc byte[NativeEndPoint.MaxLength];
        var result = Libc.Accept(listener, address, out _, Libc.SockCloExec | (nonBlocking ? Libc.SockNonBlock : 0));
        connection = result.Ok ? new FileDescriptor((int)result.Value) : null;
        if (connection is not null)
        {
            // Small replies go out at once (Kestrel's NoDelay default); a failure here is not worth the connection.
            _ = Libc.SetOption(connection, Libc.IpProtoTcp, Libc.TcpNoDelay, 1);
        }

        return result;
    }

    public static IPEndPoint? LocalEndPoint(FileDescriptor socket) => LocalAddress(socket).ToEndPoint();

    public static IPEndPoint? RemoteEndPoint(FileDescriptor socket) => RemoteAddress(socket).ToEndPoint();

    /// <summary>The socket's own address, kept as bytes (default when the kernel has none to give).</summary>
    public static PackedEndPoint LocalAddress(FileDescriptor socket)
    {
        Span<byte> address = stackalloc byte[NativeEndPoint.MaxLength];
        return Libc.SocketName(socket, address, out _).Ok ? PackedEndPoint.Read(address) : default;
    }

    /// <summary>The peer's address, kept as bytes (default when the kernel has none to give).</summary>
    public static PackedEndPoint RemoteAddress(FileDescriptor socket)
    {
        Span<byte> address = stackalloc byte[NativeEndPoint.MaxLength];
        return Libc.PeerName(socket, address, out _).Ok ? PackedEndPoint.Read(address) : default;
    }
}
