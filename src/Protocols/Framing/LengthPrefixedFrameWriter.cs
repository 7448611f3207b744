using System.Buffers;
using System.Buffers.Binary;

namespace Gateway.Protocols.Framing;

/// <summary>Writes <c>length:uint32 little-endian | body</c>.</summary>
public sealed class LengthPrefixedFrameWriter : IMessageWriter<ReadOnlySequence<byte>>
{
    public static LengthPrefixedFrameWriter Instance { get; } = new();

    public void WriteMessage(in ReadOnlySequence<byte> message, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        WriteHeader(checked((uint)message.Length), output);
        foreach (var segment in message)
        {
            output.Write(segment.Span);
        }
    }

    public static void WriteFrame(ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        ArgumentNullException.ThrowIfNull(output);
        WriteHeader((uint)body.Length, output);
        output.Write(body);
    }

    private static void WriteHeader(uint length, IBufferWriter<byte> output)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(output.GetSpan(LengthPrefixedFrameReader.HeaderLength), length);
        output.Advance(LengthPrefixedFrameReader.HeaderLength);
    }
}
