using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace Gateway.LoadGen;

/// <summary>
/// One protocol's request as sent on the wire, encoded once, and how long the reply at the start of a buffer
/// is. Replies are delimited, not parsed, so the generator spends its CPU on sockets.
/// </summary>
internal sealed class Wire
{
    /// <summary>The reply is not all there yet.</summary>
    public const int Incomplete = 0;

    /// <summary>The server answered with an error (RESP <c>-ERR ...</c>).</summary>
    public const int ErrorReply = -1;

    /// <summary>The bytes are not a reply this protocol can give.</summary>
    public const int Unexpected = -2;

    // An RPC length prefix past this is garbage, not a reply: refuse it before growing a buffer for it.
    private const int MaxRpcReplyBytes = 64 * 1024 * 1024;

    private readonly string _protocol;
    private readonly int _messageBytes;

    public Wire(LoadOptions options)
    {
        _protocol = options.Protocol;
        _messageBytes = options.MessageBytes;
        Request = _protocol switch
        {
            "echo" => Enumerable.Range(0, options.MessageBytes).Select(i => (byte)('a' + i % 26)).ToArray(),
            "resp" => "PING\r\n"u8.ToArray(),
            _ => RpcFrame(options.Method, options.Params),
        };
    }

    public byte[] Request { get; }

    private static ReadOnlySpan<byte> Pong => "+PONG\r\n"u8;

    /// <summary>
    /// The length of the whole reply at the start of <paramref name="received"/>; <see cref="Incomplete"/>
    /// if it is not all there; <see cref="ErrorReply"/> or <see cref="Unexpected"/> as soon as the first bytes show it.
    /// </summary>
    public int ReplyLength(ReadOnlySpan<byte> received)
    {
        switch (_protocol)
        {
            case "echo":
                return received.Length >= _messageBytes ? _messageBytes : Incomplete;
            case "resp":
                if (received.IsEmpty)
                {
                    return Incomplete;
                }

                if (received[0] == (byte)'-')
                {
                    return ErrorReply;
                }

                var have = Math.Min(received.Length, Pong.Length);
                return !received[..have].SequenceEqual(Pong[..have]) ? Unexpected : have == Pong.Length ? Pong.Length : Incomplete;
            default:
                if (received.Length < 4)
                {
                    return Incomplete;
                }

                var body = BinaryPrimitives.ReadUInt32LittleEndian(received);
                if (body > MaxRpcReplyBytes)
                {
                    return Unexpected;
                }

                return received.Length >= 4 + (int)body ? 4 + (int)body : Incomplete;
        }
    }

    /// <summary>The first line of a reply that failed (at most 60 bytes), printable, for one line on stderr.</summary>
    public static string Describe(ReadOnlySpan<byte> reply)
    {
        var line = reply.IndexOfAny((byte)'\r', (byte)'\n') is var end and >= 0 ? reply[..end] : reply;
        var shown = line[..Math.Min(line.Length, 60)];
        var text = new StringBuilder(shown.Length);
        foreach (var b in shown)
        {
            text.Append(b is >= 0x20 and < 0x7f ? (char)b : '.');
        }

        return text.ToString();
    }

    private static byte[] RpcFrame(string method, string parameters)
    {
        var body = Encoding.UTF8.GetBytes($"{{\"in\":{JsonSerializer.Serialize(method)},\"params\":{parameters}}}");
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }
}

/// <summary>
/// The bytes received on one connection and not yet counted as replies. The caller receives into
/// <see cref="FreeSpace"/> itself, so the hot loop has no extra async layer.
/// </summary>
internal sealed class ReplyReader(Wire wire, int initialBytes)
{
    private byte[] _buffer = new byte[initialBytes];
    private int _start;
    private int _end;

    /// <summary>What is left after the last complete reply: the start of a failed one, for a message.</summary>
    public ReadOnlySpan<byte> Unread => _buffer.AsSpan(_start, _end - _start);

    /// <summary>Takes the next complete reply: its length, or <see cref="Wire.Incomplete"/>, or a negative <see cref="Wire"/> verdict (nothing taken).</summary>
    public int Next()
    {
        var length = wire.ReplyLength(Unread);
        if (length > 0)
        {
            _start += length;
        }

        return length;
    }

    /// <summary>Room to receive into: the partial reply moves to the front, and the buffer doubles if it is all partial reply.</summary>
    public Memory<byte> FreeSpace()
    {
        if (_start > 0)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }

        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }

        return _buffer.AsMemory(_end);
    }

    public void Advance(int received) => _end += received;
}
