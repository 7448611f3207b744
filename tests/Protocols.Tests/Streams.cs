using System.Buffers;
using Gateway.Protocols.Framing;

namespace Gateway.Protocols.Tests;

/// <summary>Streams cut the way a socket might deliver them, and a reader run over one: for the property tests.</summary>
internal static class Streams
{
    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, Segment? previous)
        {
            Memory = memory;
            if (previous is not null)
            {
                previous.Next = this;
                RunningIndex = previous.RunningIndex + previous.Memory.Length;
            }
        }
    }

    /// <summary>The stream cut at the given places (each taken modulo its length + 1); no piece is empty.</summary>
    public static List<ReadOnlyMemory<byte>> Pieces(byte[] stream, int[] cuts)
    {
        var points = cuts.Select(c => c % (stream.Length + 1)).Append(0).Append(stream.Length).Distinct().Order().ToArray();
        var pieces = new List<ReadOnlyMemory<byte>>();
        for (var i = 0; i + 1 < points.Length; i++)
        {
            pieces.Add(stream.AsMemory(points[i], points[i + 1] - points[i]));
        }

        return pieces;
    }

    /// <summary>A multi-segment sequence of the stream's pieces.</summary>
    public static ReadOnlySequence<byte> Sequence(byte[] stream, int[] cuts)
    {
        Segment? first = null, last = null;
        foreach (var piece in Pieces(stream, cuts))
        {
            last = new Segment(piece, last);
            first ??= last;
        }

        return first is null ? ReadOnlySequence<byte>.Empty : new ReadOnlySequence<byte>(first, 0, last!, last!.Memory.Length);
    }

    /// <summary>Every message the reader finds, the status it stops at, and how many bytes it left unparsed.</summary>
    public static (List<byte[]> Messages, MessageParseStatus Last, long Unparsed) ParseAll(
        IMessageReader<ReadOnlySequence<byte>> reader, ReadOnlySequence<byte> input, int maximum)
    {
        var messages = new List<byte[]>();
        while (true)
        {
            var consumed = input.Start;
            var examined = input.End;
            var status = reader.TryParseMessage(input, maximum, ref consumed, ref examined, out var message);
            if (status != MessageParseStatus.Complete)
            {
                return (messages, status, input.Length);
            }

            messages.Add(message.ToArray());
            var rest = input.Slice(consumed);
            Assert.True(rest.Length < input.Length, "a complete message must consume bytes");
            input = rest;
        }
    }
}
