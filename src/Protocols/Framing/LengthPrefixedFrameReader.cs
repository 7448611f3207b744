using System.Buffers;
using System.Buffers.Binary;

namespace Gateway.Protocols.Framing;

/// <summary>
/// <c>length:uint32 little-endian | body</c>. The message is the body. The length is checked against the
/// limit as soon as its four bytes arrive, so an oversized or "negative" (≥ 2³¹) length never buffers a body.
/// </summary>
public sealed class LengthPrefixedFrameReader : IMessageReader<ReadOnlySequence<byte>>
{
    public const int HeaderLength = 4;

    public static LengthPrefixedFrameReader Instance { get; } = new();

    public MessageParseStatus TryParseMessage(
        in ReadOnlySequence<byte> input,
        int maximumMessageSize,
        ref SequencePosition consumed,
        ref SequencePosition examined,
        out ReadOnlySequence<byte> message)
    {
        message = default;
        if (input.Length < HeaderLength)
        {
            return MessageParseStatus.Incomplete;
        }

        uint length;
        if (input.FirstSpan.Length >= HeaderLength)
        {
            length = BinaryPrimitives.ReadUInt32LittleEndian(input.FirstSpan);
        }
        else
        {
            Span<byte> header = stackalloc byte[HeaderLength];
            input.Slice(0, HeaderLength).CopyTo(header);
            length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        }

        if (length > (uint)maximumMessageSize)
        {
            return MessageParseStatus.TooLarge;
        }

        if (input.Length - HeaderLength < length)
        {
            return MessageParseStatus.Incomplete;
        }

        message = input.Slice(HeaderLength, length);
        consumed = message.End;
        examined = consumed;
        return MessageParseStatus.Complete;
    }
}
