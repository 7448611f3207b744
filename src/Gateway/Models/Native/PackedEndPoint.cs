using System.Buffers.Binary;
using System.Net;

namespace Gateway.Models.Native;

/// <summary>
/// A socket address kept as plain bytes in the connection that owns it (24 bytes, no objects): an idle
/// connection holds its two addresses without an <see cref="IPEndPoint"/> and an <see cref="IPAddress"/> each
/// (72 bytes apiece). <see cref="ToEndPoint"/> makes the objects when someone asks.
/// </summary>
internal readonly struct PackedEndPoint
{
    private readonly ulong _high, _low; // the address's bytes in network order: IPv4 in the low word's first four
    private readonly uint _scope;
    private readonly ushort _port;
    private readonly ushort _family;

    private PackedEndPoint(ulong high, ulong low, uint scope, ushort port, ushort family) =>
        (_high, _low, _scope, _port, _family) = (high, low, scope, port, family);

    /// <summary>From the kernel's sockaddr_in / sockaddr_in6 bytes (as <see cref="NativeEndPoint.Write"/> writes them).</summary>
    public static PackedEndPoint Read(ReadOnlySpan<byte> address)
    {
        var family = BitConverter.ToUInt16(address);
        var port = BinaryPrimitives.ReadUInt16BigEndian(address[2..]);
        return family == Libc.AfInet
            ? new PackedEndPoint(0, BinaryPrimitives.ReadUInt32BigEndian(address[4..]), 0, port, family)
            : new PackedEndPoint(BinaryPrimitives.ReadUInt64BigEndian(address[8..]), BinaryPrimitives.ReadUInt64BigEndian(address[16..]),
                BinaryPrimitives.ReadUInt32LittleEndian(address[24..]), port, family);
    }

    /// <summary>The address as an end point, made now; null when none was read.</summary>
    public IPEndPoint? ToEndPoint()
    {
        if (_family == 0)
        {
            return null;
        }

        Span<byte> bytes = stackalloc byte[16];
        if (_family == Libc.AfInet)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)_low);
            return new IPEndPoint(new IPAddress(bytes[..4]), _port);
        }

        BinaryPrimitives.WriteUInt64BigEndian(bytes, _high);
        BinaryPrimitives.WriteUInt64BigEndian(bytes[8..], _low);
        return new IPEndPoint(new IPAddress(bytes, _scope), _port);
    }
}
