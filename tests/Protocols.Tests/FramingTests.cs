using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Gateway.Protocols.Framing;

namespace Gateway.Protocols.Tests;

public class FramingTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private static byte[] Frame(byte[] body)
    {
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }

    private static readonly byte[][] Bodies =
    [
        Encoding.UTF8.GetBytes("{\"in\":\"ping\",\"params\":\"ireader 0\"}"),
        [],
        Encoding.UTF8.GetBytes("x"),
        Enumerable.Range(0, 300).Select(i => (byte)i).ToArray(),
        Encoding.UTF8.GetBytes("{\"in\":\"echo\",\"params\":\"héllo wörld\"}"),
    ];

    /// <summary>Feeds <paramref name="stream"/> in the given pieces and collects every message the reader yields.</summary>
    private static async Task<(List<byte[]> Messages, ProtocolReadResult<ReadOnlySequence<byte>> Last)> ReadAllAsync(
        IMessageReader<ReadOnlySequence<byte>> messageReader, int maximum, IEnumerable<ReadOnlyMemory<byte>> pieces)
    {
        var pipe = new Pipe();
        var writer = Task.Run(async () =>
        {
            foreach (var piece in pieces)
            {
                await pipe.Writer.WriteAsync(piece);
            }

            await pipe.Writer.CompleteAsync();
        });
        var reader = new ProtocolReader(pipe.Reader, maximum);
        var messages = new List<byte[]>();
        using var timeout = new CancellationTokenSource(Patience);
        while (true)
        {
            var result = await reader.ReadAsync(messageReader, timeout.Token);
            if (!result.IsMessage)
            {
                await writer;
                return (messages, result);
            }

            messages.Add(result.Message.ToArray());
            reader.Advance();
        }
    }

    private static IEnumerable<ReadOnlyMemory<byte>> SplitAt(byte[] stream, int position) =>
        [stream.AsMemory(0, position), stream.AsMemory(position)];

    [Fact]
    public async Task LengthPrefixedFramesSplitAtEveryBytePositionParseToTheSameMessages()
    {
        var stream = Bodies.SelectMany(Frame).ToArray();
        for (var split = 0; split <= stream.Length; split++)
        {
            var (messages, last) = await ReadAllAsync(LengthPrefixedFrameReader.Instance, 1024, SplitAt(stream, split));
            Assert.Equal(ProtocolReadStatus.Completed, last.Status);
            Assert.Equal(0, last.UnparsedBytes);
            Assert.True(Bodies.Length == messages.Count, $"split at {split}: {messages.Count} messages");
            for (var i = 0; i < Bodies.Length; i++)
            {
                Assert.True(Bodies[i].AsSpan().SequenceEqual(messages[i]), $"split at {split}: message {i} differs");
            }
        }
    }

    [Fact]
    public async Task LengthPrefixedFramesFedOneByteAtATimeParseToTheSameMessages()
    {
        var stream = Bodies.SelectMany(Frame).ToArray();
        var pieces = Enumerable.Range(0, stream.Length).Select(i => (ReadOnlyMemory<byte>)stream.AsMemory(i, 1));
        var (messages, _) = await ReadAllAsync(LengthPrefixedFrameReader.Instance, 1024, pieces);
        Assert.Equal(Bodies.Select(Convert.ToHexString), messages.Select(Convert.ToHexString));
    }

    [Theory]
    [InlineData(1025u)]
    [InlineData(0x8000_0000u)] // negative as an int32
    [InlineData(0xFFFF_FFFFu)] // -1 as an int32
    public async Task LengthOverTheLimitIsRejectedFromTheHeaderAloneBeforeAnyBodyArrives(uint length)
    {
        var header = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(header, length);
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(header); // the body never comes and the writer stays open
        var reader = new ProtocolReader(pipe.Reader, 1024);
        using var timeout = new CancellationTokenSource(Patience);
        var result = await reader.ReadAsync(LengthPrefixedFrameReader.Instance, timeout.Token);
        Assert.Equal(ProtocolReadStatus.TooLarge, result.Status);
    }

    [Fact]
    public async Task FrameOfExactlyTheLimitIsAccepted()
    {
        var body = new byte[1024];
        Random.Shared.NextBytes(body);
        var (messages, last) = await ReadAllAsync(LengthPrefixedFrameReader.Instance, 1024, [Frame(body)]);
        Assert.Equal(ProtocolReadStatus.Completed, last.Status);
        Assert.Equal(body, Assert.Single(messages));
    }

    [Fact]
    public async Task EndOfInputInsideAFrameIsCompletedWithTheTornBytesCounted()
    {
        var stream = Frame(Bodies[0]).Concat(Frame(Bodies[3])[..10]).ToArray();
        var (messages, last) = await ReadAllAsync(LengthPrefixedFrameReader.Instance, 1024, [stream]);
        Assert.Single(messages);
        Assert.Equal(ProtocolReadStatus.Completed, last.Status);
        Assert.Equal(10, last.UnparsedBytes);
    }

    [Fact]
    public async Task TryReadYieldsEveryBufferedMessageWithoutWaitingThenStopsAtAPartialOne()
    {
        var pipe = new Pipe();
        var stream = Frame(Bodies[0]).Concat(Frame(Bodies[2])).Concat(Frame(Bodies[3])[..7]).ToArray();
        await pipe.Writer.WriteAsync(stream);
        var reader = new ProtocolReader(pipe.Reader, 1024);

        var first = await reader.ReadAsync(LengthPrefixedFrameReader.Instance);
        Assert.Equal(Bodies[0], first.Message.ToArray());
        reader.Advance();
        Assert.True(reader.TryRead(LengthPrefixedFrameReader.Instance, out var second));
        Assert.Equal(Bodies[2], second.Message.ToArray());
        reader.Advance();
        Assert.False(reader.TryRead(LengthPrefixedFrameReader.Instance, out _));

        // The rest of the partial frame arrives: the next read completes it.
        await pipe.Writer.WriteAsync(Frame(Bodies[3]).AsMemory(7));
        var third = await reader.ReadAsync(LengthPrefixedFrameReader.Instance);
        Assert.Equal(Bodies[3], third.Message.ToArray());
    }

    [Fact]
    public async Task FrameWriterOutputIsReadBackByTheFrameReader()
    {
        var pipe = new Pipe();
        foreach (var body in Bodies)
        {
            LengthPrefixedFrameWriter.Instance.WriteMessage(new ReadOnlySequence<byte>(body), pipe.Writer);
        }

        await pipe.Writer.CompleteAsync();
        var reader = new ProtocolReader(pipe.Reader, 1024);
        foreach (var body in Bodies)
        {
            var result = await reader.ReadAsync(LengthPrefixedFrameReader.Instance);
            Assert.Equal(body, result.Message.ToArray());
            reader.Advance();
        }

        Assert.Equal(ProtocolReadStatus.Completed, (await reader.ReadAsync(LengthPrefixedFrameReader.Instance)).Status);
    }

    private static readonly string[] Lines = ["USER alice", "PASS secret", "", "STOR fïle with spaces.txt", "NOOP"];

    [Fact]
    public async Task CrLfLinesSplitAtEveryBytePositionParseToTheSameLines()
    {
        var stream = Encoding.UTF8.GetBytes(string.Concat(Lines.Select(l => l + "\r\n")));
        for (var split = 0; split <= stream.Length; split++)
        {
            var (messages, last) = await ReadAllAsync(LineReader.Instance, 64, SplitAt(stream, split));
            Assert.Equal(ProtocolReadStatus.Completed, last.Status);
            Assert.Equal(Lines, messages.Select(m => Encoding.UTF8.GetString(m)));
        }
    }

    [Fact]
    public async Task BareLineFeedAlsoEndsALine()
    {
        var (messages, _) = await ReadAllAsync(LineReader.Instance, 64, [Encoding.ASCII.GetBytes("NOOP\nPWD\r\n")]);
        Assert.Equal(["NOOP", "PWD"], messages.Select(m => Encoding.ASCII.GetString(m)));
    }

    [Fact]
    public async Task LineOfExactlyTheLimitIsAcceptedAndOneByteMoreIsTooLarge()
    {
        var exact = new string('a', 64);
        var (messages, _) = await ReadAllAsync(LineReader.Instance, 64, [Encoding.ASCII.GetBytes(exact + "\r\n")]);
        Assert.Equal(exact, Encoding.ASCII.GetString(Assert.Single(messages)));

        var (none, last) = await ReadAllAsync(LineReader.Instance, 64, [Encoding.ASCII.GetBytes(exact + "a\r\n")]);
        Assert.Empty(none);
        Assert.Equal(ProtocolReadStatus.TooLarge, last.Status);
    }

    [Fact]
    public async Task EndlessLineIsTooLargeOnceItPassesTheLimitWithoutWaitingForMore()
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(new byte[100]); // no newline, writer stays open
        var reader = new ProtocolReader(pipe.Reader, 64);
        using var timeout = new CancellationTokenSource(Patience);
        Assert.Equal(ProtocolReadStatus.TooLarge, (await reader.ReadAsync(LineReader.Instance, timeout.Token)).Status);
    }

    /// <summary>A reader that never finds a message, to prove the loop's own limit stops it.</summary>
    private sealed class NeverCompleteReader : IMessageReader<ReadOnlySequence<byte>>
    {
        public MessageParseStatus TryParseMessage(in ReadOnlySequence<byte> input, int maximumMessageSize,
            ref SequencePosition consumed, ref SequencePosition examined, out ReadOnlySequence<byte> message)
        {
            message = default;
            return MessageParseStatus.Incomplete;
        }
    }

    [Fact]
    public async Task ReadLoopStopsAReaderThatBuffersPastTheLimitPlusFramingAllowance()
    {
        var pipe = new Pipe();
        var reader = new ProtocolReader(pipe.Reader, 1000);
        using var timeout = new CancellationTokenSource(Patience);

        // Within the limit plus the 1 KiB framing allowance the reader may keep waiting for its message ...
        await pipe.Writer.WriteAsync(new byte[1000 + 1024]);
        Assert.False(reader.TryRead(new NeverCompleteReader(), out _));

        // ... one byte more and the loop gives up on it.
        await pipe.Writer.WriteAsync(new byte[1]);
        var result = await reader.ReadAsync(new NeverCompleteReader(), timeout.Token);
        Assert.Equal(ProtocolReadStatus.TooLarge, result.Status);
        Assert.Equal(1000 + 1024 + 1, result.UnparsedBytes);
    }

    [Fact]
    public async Task CancelledPendingReadIsReportedAsCanceled()
    {
        var pipe = new Pipe();
        var reader = new ProtocolReader(pipe.Reader, 1000);
        var read = reader.ReadAsync(LengthPrefixedFrameReader.Instance);
        pipe.Reader.CancelPendingRead();
        Assert.Equal(ProtocolReadStatus.Canceled, (await read).Status);
    }

    [Fact]
    public async Task IdleTimeoutFiresWhenArmedAndIsOffAtZero()
    {
        using var idle = new IdleTimeout(TimeSpan.FromMilliseconds(50));
        idle.Arm();
        var pipe = new Pipe();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await pipe.Reader.ReadAsync(idle.Token));
        Assert.True(idle.HasExpired);

        using var off = new IdleTimeout(TimeSpan.Zero);
        off.Arm();
        Assert.False(off.Token.CanBeCanceled);
    }

    [Fact]
    public async Task AnExpiredIdleTimeoutWakesTheReadAndTheFlushItWasGivenWithoutAToken()
    {
        var input = new Pipe();
        using var idle = new IdleTimeout(TimeSpan.FromMilliseconds(50), input.Reader);
        idle.Arm();
        var read = await input.Reader.ReadAsync().AsTask().WaitAsync(Patience);
        Assert.True(read.IsCanceled);
        Assert.True(idle.HasExpired);
        Assert.Throws<OperationCanceledException>(idle.ThrowIfExpired);
        Assert.True(idle.Token.IsCancellationRequested); // a token asked for after the expiry is cancelled too

        // A flush held up by a reader that does not read: expiry wakes it.
        var held = new Pipe(new PipeOptions(pauseWriterThreshold: 4, resumeWriterThreshold: 2));
        using var flushing = new IdleTimeout(TimeSpan.FromMilliseconds(50), output: held.Writer);
        flushing.Arm();
        held.Writer.Write(new byte[8]);
        var flush = held.Writer.FlushAsync();
        Assert.False(flush.IsCompleted);
        Assert.True((await flush.AsTask().WaitAsync(Patience)).IsCanceled);
        Assert.True(flushing.HasExpired);
    }

    [Fact]
    public async Task ACloseRequestFromTheTransportsFeatureWakesTheReadWithoutAToken()
    {
        var pipe = new Pipe();
        var connection = new Microsoft.AspNetCore.Connections.DefaultConnectionContext("close-request");
        var transport = new TransportCloseRequest();
        connection.Features.Set<ICloseRequestWakeFeature>(transport);
        var request = ConnectionLifetime.CloseRequestOf(connection);
        using (request.WakeReads(pipe.Reader))
        {
            Assert.Same(pipe.Reader, transport.Waking);
            var read = pipe.Reader.ReadAsync();
            Assert.False(request.IsRequested);
            transport.Request();
            Assert.True((await read.AsTask().WaitAsync(Patience)).IsCanceled);
            Assert.True(request.IsRequested);
        }
    }

    [Fact]
    public async Task AFrameInProgressBelowTheMinimumRateEndsTooSlowWithTheBytesSoFar()
    {
        var pipe = new Pipe();
        var reader = new ProtocolReader(pipe.Reader, 1000) { MinimumBytesPerSecond = 1000, MinimumRateGrace = TimeSpan.FromMilliseconds(200) };
        // Half a header, then nothing: 2 bytes can never make 1000 bytes/s once the grace is over.
        await pipe.Writer.WriteAsync(Frame(new byte[50]).AsMemory(0, 2));
        var read = await reader.ReadAsync(LengthPrefixedFrameReader.Instance).AsTask().WaitAsync(Patience);
        Assert.Equal(ProtocolReadStatus.TooSlow, read.Status);
        Assert.Equal(2, read.UnparsedBytes);
    }

    [Fact]
    public async Task AQuietConnectionBetweenFramesIsNotTooSlowAndAFastFrameIsRead()
    {
        var pipe = new Pipe();
        var reader = new ProtocolReader(pipe.Reader, 100_000) { MinimumBytesPerSecond = 1000, MinimumRateGrace = TimeSpan.FromMilliseconds(100) };
        // Nothing in progress: the read waits past the grace (the idle timeout's business, not the rate's).
        var waiting = reader.ReadAsync(LengthPrefixedFrameReader.Instance).AsTask();
        await Task.Delay(400);
        Assert.False(waiting.IsCompleted);

        // A frame in pieces well above the rate, over several graces, is read whole.
        var frame = Frame(new byte[20_000]);
        for (var offset = 0; offset < frame.Length; offset += 5000)
        {
            await pipe.Writer.WriteAsync(frame.AsMemory(offset, Math.Min(5000, frame.Length - offset)));
            await Task.Delay(100);
        }

        var read = await waiting.WaitAsync(Patience);
        Assert.Equal(ProtocolReadStatus.Message, read.Status);
        Assert.Equal(20_000, read.Message.Length);
        reader.Advance();

        // The clock starts afresh for the next frame: a pause before it begins costs nothing.
        await Task.Delay(300);
        await pipe.Writer.WriteAsync(Frame("ok"u8.ToArray()));
        Assert.Equal(ProtocolReadStatus.Message, (await reader.ReadAsync(LengthPrefixedFrameReader.Instance).AsTask().WaitAsync(Patience)).Status);
    }

    [Fact]
    public async Task BytesArrivingJustInTimeKeepTheFrameAlive()
    {
        var pipe = new Pipe();
        var reader = new ProtocolReader(pipe.Reader, 100_000) { MinimumBytesPerSecond = 20, MinimumRateGrace = TimeSpan.FromMilliseconds(300) };
        // 40 bytes every 100 ms is 400 bytes/s: twenty times the rate, so a loaded machine's late timers (a CI run
        // beside other builds made it fail at a margin of four) still keep it above.
        var frame = Frame(new byte[600]);
        var writing = Task.Run(async () =>
        {
            for (var offset = 0; offset < frame.Length; offset += 40)
            {
                await pipe.Writer.WriteAsync(frame.AsMemory(offset, Math.Min(40, frame.Length - offset)));
                await Task.Delay(100);
            }
        });
        var read = await reader.ReadAsync(LengthPrefixedFrameReader.Instance).AsTask().WaitAsync(Patience);
        Assert.Equal(ProtocolReadStatus.Message, read.Status);
        await writing;
    }

    [Fact]
    public async Task ALineOverTheLimitIsSkippedToItsEndOnceAndTheLinesBehindItParse()
    {
        // In one write, and with the long line arriving in pieces each over the limit, read as they come: one
        // TooLarge either way, then the commands behind it.
        var stream = Encoding.ASCII.GetBytes(new string('A', 25_000) + "\r\nNOOP\r\nPWD\r\n");
        foreach (var pieces in new[] { new ReadOnlyMemory<byte>[] { stream }, [.. Enumerable.Range(0, 5).Select(i => stream.AsMemory(i * 5000, 5000)), stream.AsMemory(25_000)] })
        {
            var pipe = new Pipe();
            var reader = new ProtocolReader(pipe.Reader, 4096);
            var statuses = new List<string>();
            foreach (var piece in pieces)
            {
                await pipe.Writer.WriteAsync(piece);
                while (reader.TryRead(LineReader.Instance, out var read))
                {
                    statuses.Add(read.IsMessage ? Encoding.ASCII.GetString(read.Message) : read.Status.ToString());
                    if (read.IsMessage)
                    {
                        reader.Advance();
                    }
                }
            }

            await pipe.Writer.CompleteAsync();
            Assert.Equal(ProtocolReadStatus.Completed, (await reader.ReadAsync(LineReader.Instance).AsTask().WaitAsync(Patience)).Status);
            Assert.Equal(["TooLarge", "NOOP", "PWD"], statuses);
        }
    }

    /// <summary>A transport that signals its close request by waking the reader it was given.</summary>
    private sealed class TransportCloseRequest : ICloseRequestWakeFeature
    {
        public PipeReader? Waking { get; private set; }

        public bool IsCloseRequested { get; private set; }

        public void WakeOnCloseRequest(PipeReader input) => Waking = input;

        public void Request()
        {
            IsCloseRequested = true;
            Waking?.CancelPendingRead();
        }
    }
}
