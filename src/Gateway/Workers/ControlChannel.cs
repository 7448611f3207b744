using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text.Json;
using Gateway.Connections;
using Gateway.Models.Native;
using Gateway.Protocols.Framing;

namespace Gateway.Workers;

/// <summary>
/// The supervisor ⇄ worker channel: a connected Unix domain socket carrying <see cref="ControlMessage"/>s
/// framed like RPC (<see cref="LengthPrefixedFrameReader"/>). Sends may come from several tasks at once
/// (heartbeats, replies); one lock keeps frames whole.
/// </summary>
internal sealed class ControlChannel : IAsyncDisposable
{
    /// <summary>Control messages are small; a bigger frame means the peer is not a worker of ours.</summary>
    public const int MaxFrameBytes = 1024 * 1024;

    private readonly Socket _socket;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly ProtocolReader _reader;
    private readonly SemaphoreSlim _sending = new(1, 1);

    public ControlChannel(Socket socket)
    {
        _socket = socket;
        var stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(stream);
        _output = PipeWriter.Create(stream);
        _reader = new ProtocolReader(_input, MaxFrameBytes);
    }

    public Socket Socket => _socket;

    /// <summary>The next message, or null at the end of the stream (the other process closed or died).</summary>
    public async ValueTask<ControlMessage?> ReadAsync(CancellationToken cancellationToken = default)
    {
        var read = await _reader.ReadAsync(LengthPrefixedFrameReader.Instance, cancellationToken);
        switch (read.Status)
        {
            case ProtocolReadStatus.TooLarge:
                throw new InvalidDataException("control frame over the limit");
            case not ProtocolReadStatus.Message:
                return null;
        }

        try
        {
            return Parse(read.Message);
        }
        finally
        {
            _reader.Advance();
        }
    }

    public ValueTask SendAsync(ControlMessage message, CancellationToken cancellationToken = default) =>
        SendFrameAsync(Serialize(message), cancellationToken);

    /// <summary>
    /// A listing's answer in as many frames as it takes. A worker answers the pool's listing with its first
    /// offset+limit matches, which can be thousands of snapshots (about 400 bytes each), more than
    /// <see cref="MaxFrameBytes"/>; and a frame over that ends the channel, and with it the worker. So the items
    /// go in parts that fit, halved until they do; every part carries the page's total, all but the last say
    /// <see cref="ControlMessage.More"/>.
    /// </summary>
    public async ValueTask SendPageAsync(long? requestId, ConnectionPage page, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(page);
        var items = page.Items;
        var size = Math.Max(1, items.Count);
        var start = 0;
        do
        {
            var take = Math.Min(size, items.Count - start);
            var body = Serialize(new ControlMessage(ControlMessage.Page)
            {
                RequestId = requestId,
                Listing = page with { Items = [.. items.Skip(start).Take(take)] },
                More = start + take < items.Count ? true : null,
            });
            if (body.Length > MaxFrameBytes && take > 1)
            {
                size = take / 2;
                continue;
            }

            await SendFrameAsync(body, cancellationToken);
            start += take;
        }
        while (start < items.Count);
    }

    private async ValueTask SendFrameAsync(byte[] body, CancellationToken cancellationToken)
    {
        await _sending.WaitAsync(cancellationToken);
        try
        {
            LengthPrefixedFrameWriter.WriteFrame(body, _output);
            await _output.FlushAsync(cancellationToken);
        }
        finally
        {
            _sending.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _input.CompleteAsync();
        await _output.CompleteAsync();
        _socket.Dispose();
        _sending.Dispose();
    }

    public static byte[] Serialize(ControlMessage message) =>
        JsonSerializer.SerializeToUtf8Bytes(message, ControlJsonContext.Default.ControlMessage);

    public static ControlMessage Parse(ReadOnlySequence<byte> body)
    {
        var reader = new Utf8JsonReader(body);
        return JsonSerializer.Deserialize(ref reader, ControlJsonContext.Default.ControlMessage)
            ?? throw new InvalidDataException("empty control message");
    }

    /// <summary>A message as one whole frame, for the blocking sends of the hello exchange.</summary>
    public static byte[] Frame(ControlMessage message)
    {
        var frame = new ArrayBufferWriter<byte>();
        LengthPrefixedFrameWriter.WriteFrame(Serialize(message), frame);
        return frame.WrittenSpan.ToArray();
    }

    /// <summary>One frame and the descriptors that travel with it, sent before the channel carries anything else.</summary>
    public static void SendWithDescriptors(Socket socket, ControlMessage message, ReadOnlySpan<int> descriptors)
    {
        var frame = Frame(message);
        var sent = Libc.SendWithDescriptors(socket.SafeHandle, frame, descriptors).ThrowIfFailed("sendmsg");
        if (sent < frame.Length)
        {
            // The descriptors went with the first bytes; the rest is plain data.
            socket.Send(frame.AsSpan((int)sent));
        }
    }

    /// <summary>
    /// Receives the first frame on a channel and the descriptors passed with it (blocking; called once, at a
    /// worker's start, before the channel is used any other way).
    /// </summary>
    public static ControlMessage ReceiveWithDescriptors(Socket socket, TimeSpan timeout, out int[] descriptors)
    {
        var buffer = new byte[64 * 1024];
        Span<int> passed = stackalloc int[Libc.MaxPassedDescriptors];
        var collected = new List<int>();
        var length = 0;
        var deadline = Environment.TickCount64 + (long)timeout.TotalMilliseconds;
        while (true)
        {
            if (length >= LengthPrefixedFrameReader.HeaderLength)
            {
                var bodyLength = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(buffer);
                if (bodyLength > buffer.Length - LengthPrefixedFrameReader.HeaderLength)
                {
                    throw new InvalidDataException("first control frame over the limit");
                }

                if (length >= LengthPrefixedFrameReader.HeaderLength + bodyLength)
                {
                    descriptors = [.. collected];
                    return Parse(new ReadOnlySequence<byte>(buffer, LengthPrefixedFrameReader.HeaderLength, bodyLength));
                }
            }

            var wait = deadline - Environment.TickCount64;
            if (wait <= 0 || !socket.Poll(TimeSpan.FromMilliseconds(wait), SelectMode.SelectRead))
            {
                throw new TimeoutException("no sockets from the supervisor in time");
            }

            var result = Libc.ReceiveWithDescriptors(socket.SafeHandle, buffer.AsSpan(length), passed, out var count);
            if (!result.Ok && result.Error is Errno.WouldBlock or Errno.Interrupted)
            {
                continue;
            }

            var received = (int)result.ThrowIfFailed("recvmsg");
            collected.AddRange(passed[..count]);
            if (received == 0)
            {
                throw new EndOfStreamException("the supervisor closed the control channel");
            }

            length += received;
        }
    }
}
