using System.Buffers.Binary;
using System.Net;

namespace Gateway.Models.Native;

/// <summary>IPEndPoint to the kernel's sockaddr_in / sockaddr_in6 bytes (<see cref="PackedEndPoint"/> reads them back).</summary>
internal static class NativeEndPoint
{
    /// <summary>Big enough for sockaddr_in6 (28 bytes).</summary>
    public const int MaxLength = 28;

    public static int Write(IPEndPoint endpoint, Span<byte> address)
    {
        address[..MaxLength].Clear();
        BinaryPrimitives.WriteUInt16BigEndian(address[2..], (ushort)endpoint.Port);
        if (endpoint.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork)
        {
            BitConverter.TryWriteBytes(address, (ushort)Libc.AfInet); // sa_family: host order
            endpoint.Address.TryWriteBytes(address[4..8], out _);
            return 16;
        }

        BitConverter.TryWriteBytes(address, (ushort)Libc.AfInet6);
        endpoint.Address.TryWriteBytes(address[8..24], out _);
        BinaryPrimitives.WriteUInt32LittleEndian(address[24..], (uint)endpoint.Address.ScopeId);
        return MaxLength;
    }
}
