using System.Buffers;

namespace Gateway.Protocols.Framing;

/// <summary>
/// Lines ended by CRLF, the FTP control channel's framing (RFC 959). A bare LF also ends a line, since some
/// clients send one; the message excludes the terminator. A line longer than the limit is
/// <see cref="MessageParseStatus.TooLarge"/> once the limit is passed without a terminator.
/// </summary>
public sealed class LineReader : IMessageReader<ReadOnlySequence<byte>>, IResynchronizingMessageReader
{
    public static LineReader Instance { get; } = new();

    public MessageParseStatus TryParseMessage(
        in ReadOnlySequence<byte> input,
        int maximumMessageSize,
        ref SequencePosition consumed,
        ref SequencePosition examined,
        out ReadOnlySequence<byte> message)
    {
        message = default;
        // Look no further than the longest allowed line plus its CRLF.
        var window = input.Length > maximumMessageSize + 2L ? input.Slice(0, maximumMessageSize + 2L) : input;
        var newline = window.PositionOf((byte)'\n');
        if (newline is not { } lf)
        {
            if (window.Length < input.Length)
            {
                return MessageParseStatus.TooLarge;
            }

            return MessageParseStatus.Incomplete;
        }

        var line = input.Slice(0, lf);
        if (!line.IsEmpty && EndsWithCarriageReturn(line))
        {
            line = line.Slice(0, line.Length - 1);
        }

        if (line.Length > maximumMessageSize)
        {
            return MessageParseStatus.TooLarge;
        }

        message = line;
        consumed = input.GetPosition(1, lf);
        examined = consumed;
        return MessageParseStatus.Complete;
    }

    public SequencePosition? EndOfMessage(in ReadOnlySequence<byte> input) =>
        input.PositionOf((byte)'\n') is { } lf ? input.GetPosition(1, lf) : null;

    private static bool EndsWithCarriageReturn(in ReadOnlySequence<byte> line)
    {
        if (line.IsSingleSegment)
        {
            return line.FirstSpan[^1] == (byte)'\r';
        }

        return line.Slice(line.Length - 1).FirstSpan[0] == (byte)'\r';
    }
}
