using System.Buffers;

namespace Gateway.Protocols.Framing;

/// <summary>What one attempt to parse a message found.</summary>
public enum MessageParseStatus
{
    /// <summary>Not enough bytes yet; <c>examined</c> says how far the reader looked.</summary>
    Incomplete,

    /// <summary>One message parsed; <c>consumed</c> is just past it.</summary>
    Complete,

    /// <summary>The message in progress exceeds the limit; framing is lost.</summary>
    TooLarge,
}

/// <summary>
/// Parses one message from the front of a byte sequence (the BedrockFramework shape). A reader knows its
/// own framing, so it reports <see cref="MessageParseStatus.TooLarge"/> as soon as it can tell — a length
/// prefix at its fourth byte, not after a megabyte has been buffered.
/// </summary>
public interface IMessageReader<TMessage>
{
    MessageParseStatus TryParseMessage(
        in ReadOnlySequence<byte> input,
        int maximumMessageSize,
        ref SequencePosition consumed,
        ref SequencePosition examined,
        out TMessage message);
}

/// <summary>Writes one message, framing included, into a buffer writer.</summary>
public interface IMessageWriter<TMessage>
{
    void WriteMessage(in TMessage message, IBufferWriter<byte> output);
}

/// <summary>
/// A reader whose messages have an end marker (lines), so the stream can go on after an oversized one: the
/// read loop skips to its end instead of giving the connection up. Length-prefixed frames cannot: a bad
/// length loses the framing for good.
/// </summary>
public interface IResynchronizingMessageReader
{
    /// <summary>Just past the end of the message that starts <paramref name="input"/>, or null if its end has not arrived.</summary>
    SequencePosition? EndOfMessage(in ReadOnlySequence<byte> input);
}
