using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using CsCheck;
using Gateway.Protocols.Framing;
using Gateway.Protocols.Ftp;
using Gateway.Protocols.Rpc;

namespace Gateway.Protocols.Tests;

/// <summary>
/// Property-based tests of every parser (CsCheck: random inputs, shrunk to the smallest failing one, with the seed
/// to replay it): random bytes never make a parser throw — it answers with the protocol's own statuses — and a
/// stream split at random places parses exactly as the joined stream does.
/// </summary>
public sealed class ParserPropertyTests
{
    private const int Iterations = 300;
    private static readonly string[] NotNormal = ["", ".", ".."];
    private static readonly MessageParseStatus[] Unfinished = [MessageParseStatus.Incomplete, MessageParseStatus.TooLarge];

    private static ReadOnlySequence<byte> Split(byte[] stream, int[] cuts) => Streams.Sequence(stream, cuts);

    private static (List<byte[]> Messages, MessageParseStatus Last, long Unparsed) ParseAll(IMessageReader<ReadOnlySequence<byte>> reader, ReadOnlySequence<byte> input, int maximum) =>
        Streams.ParseAll(reader, input, maximum);

    private static byte[] Frames(IEnumerable<byte[]> bodies)
    {
        var stream = new List<byte>();
        foreach (var body in bodies)
        {
            var header = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)body.Length);
            stream.AddRange(header);
            stream.AddRange(body);
        }

        return [.. stream];
    }

    private static readonly Gen<byte[][]> FrameBodies = Gen.Byte.Array[0, 300].Array[0, 12];
    private static readonly Gen<int[]> Cuts = Gen.Int[0, int.MaxValue].Array[0, 16];

    [Fact]
    public void RandomBytesGiveTheFrameReaderOnlyItsOwnStatusesAndNeverMoreThanTheyHold() =>
        Gen.Select(Gen.Byte.Array[0, 2000], Gen.Int[1, 4096], Cuts).Sample((bytes, maximum, cuts) =>
        {
            var (messages, last, _) = ParseAll(LengthPrefixedFrameReader.Instance, Split(bytes, cuts), maximum);
            Assert.Contains(last, Unfinished);
            Assert.True(messages.Sum(m => m.Length + 4L) <= bytes.Length);
            Assert.All(messages, m => Assert.InRange(m.Length, 0, maximum));
        }, iter: Iterations);

    [Fact]
    public void FramesSplitAnywhereParseToTheSameBodiesAsJoined() =>
        Gen.Select(FrameBodies, Cuts).Sample((bodies, cuts) =>
        {
            var stream = Frames(bodies);
            var joined = ParseAll(LengthPrefixedFrameReader.Instance, new ReadOnlySequence<byte>(stream), 1000);
            var split = ParseAll(LengthPrefixedFrameReader.Instance, Split(stream, cuts), 1000);
            Assert.Equal(bodies, joined.Messages);
            Assert.Equal(bodies, split.Messages);
            Assert.Equal(MessageParseStatus.Incomplete, split.Last);
        }, iter: Iterations);

    [Fact]
    public void FramesFedThroughAPipeInRandomPiecesAreReadWholeAndInOrder() =>
        Gen.Select(FrameBodies, Cuts).Sample((bodies, cuts) =>
        {
            var stream = Frames(bodies);
            var pipe = new Pipe();
            var reader = new ProtocolReader(pipe.Reader, 1000);
            var received = new List<byte[]>();
            foreach (var piece in Split(stream, cuts))
            {
                pipe.Writer.Write(piece.Span);
                pipe.Writer.FlushAsync().AsTask().GetAwaiter().GetResult();
                while (reader.TryRead(LengthPrefixedFrameReader.Instance, out var read) && read.IsMessage)
                {
                    received.Add(read.Message.ToArray());
                    reader.Advance();
                }
            }

            pipe.Writer.Complete();
            var end = reader.ReadAsync(LengthPrefixedFrameReader.Instance).AsTask().GetAwaiter().GetResult();
            Assert.Equal(ProtocolReadStatus.Completed, end.Status);
            Assert.Equal(0, end.UnparsedBytes);
            Assert.Equal(bodies, received);
        }, iter: Iterations);

    [Fact]
    public void AFrameAnnouncingMoreThanTheLimitIsTooLargeFromItsHeaderAlone() =>
        Gen.Select(Gen.Int[1, 100_000], Gen.UInt).Sample((maximum, length) =>
        {
            var header = new byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(header, length);
            var (messages, last, _) = ParseAll(LengthPrefixedFrameReader.Instance, new ReadOnlySequence<byte>(header), maximum);
            if (length > (uint)maximum)
            {
                Assert.Equal(MessageParseStatus.TooLarge, last);
            }
            else
            {
                Assert.Equal(length == 0 ? 1 : 0, messages.Count);
            }
        }, iter: Iterations);

    private static readonly Gen<byte[]> LineContent = Gen.Byte.Where(b => b is not ((byte)'\r' or (byte)'\n')).Array[0, 200];

    [Fact]
    public void LinesSplitAnywhereParseToTheSameLinesAsJoinedWithEitherTerminator() =>
        Gen.Select(Gen.Select(LineContent, Gen.Bool).Array[0, 12], Cuts).Sample((lines, cuts) =>
        {
            var stream = lines.SelectMany(l => l.Item1.Concat(l.Item2 ? "\r\n"u8.ToArray() : "\n"u8.ToArray())).ToArray();
            var expected = lines.Select(l => l.Item1).ToArray();
            Assert.Equal(expected, ParseAll(LineReader.Instance, new ReadOnlySequence<byte>(stream), 200).Messages);
            var split = ParseAll(LineReader.Instance, Split(stream, cuts), 200);
            Assert.Equal(expected, split.Messages);
            Assert.Equal(MessageParseStatus.Incomplete, split.Last);
        }, iter: Iterations);

    [Fact]
    public void RandomBytesGiveTheLineReaderOnlyItsOwnStatusesAndLinesWithinTheLimit() =>
        Gen.Select(Gen.Byte.Array[0, 3000], Gen.Int[1, 1000], Cuts).Sample((bytes, maximum, cuts) =>
        {
            var (messages, last, _) = ParseAll(LineReader.Instance, Split(bytes, cuts), maximum);
            Assert.Contains(last, Unfinished);
            Assert.All(messages, m => Assert.InRange(m.Length, 0, maximum));
            Assert.All(messages, m => Assert.DoesNotContain((byte)'\n', m));
            // Past the limit without a line feed is TooLarge, never a wait for more.
            var tail = bytes.AsSpan(messages.Sum(m => m.Length) + messages.Count);
            if (last == MessageParseStatus.Incomplete)
            {
                Assert.True(tail.Length <= maximum + 2 || tail.IndexOf((byte)'\n') >= 0);
            }
        }, iter: Iterations);

    [Fact]
    public void RandomControlLinesNeverMakeTheFtpParserThrow() =>
        Gen.OneOf(Gen.Byte.Array[0, 300], Gen.Byte[250, 255].Array[0, 40], Gen.Select(Gen.Byte.Array[0, 50], Gen.Byte[250, 255].Array[1, 8]).Select((a, b) => a.Concat(b).ToArray()))
            .Sample(bytes =>
            {
                var command = FtpCommandParser.Parse(new ReadOnlySequence<byte>(bytes));
                Assert.NotNull(command.Name);
                Assert.NotNull(command.Argument);
                Assert.Equal(command.Name.ToUpperInvariant(), command.Name);
            }, iter: Iterations * 3);

    private static readonly string[] VerbNames = [.. Enum.GetValues<FtpVerb>().Where(v => v != FtpVerb.Unknown).Select(v => v.ToString().ToUpperInvariant())];

    private static readonly Gen<string> Argument = Gen.Char['!', '~'].Array[0, 40].Select(c => new string(c))
        .Select(Gen.Char[' ', '~'].Array[0, 20], (a, b) => a + new string(b));

    [Fact]
    public void AKnownVerbInAnyCaseParsesToItselfWithItsArgumentVerbatim() =>
        Gen.Select(Gen.Int[0, VerbNames.Length - 1], Gen.Bool.Array[8], Argument).Sample((index, upper, argument) =>
        {
            var name = VerbNames[index];
            var mixed = new string(name.Select((c, i) => upper[i % upper.Length] ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c)).ToArray());
            var command = FtpCommandParser.Parse(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes($"{mixed} {argument}")));
            Assert.Equal(Enum.Parse<FtpVerb>(name, ignoreCase: true), command.Verb);
            Assert.Equal(argument, command.Argument);
            if (command.Verb == FtpVerb.Pass)
            {
                Assert.Equal("PASS ****", command.ToString()); // the password never in a log line
            }
        }, iter: Iterations);

    private static readonly Gen<string> PathSegment = Gen.OneOf(
        Gen.Const(".."), Gen.Const("."), Gen.Const(""), Gen.Const("..."), Gen.Const("a\\..\\b"), Gen.Const("~"),
        Gen.String[1, 8], Gen.Char['a', 'z'].Array[1, 6].Select(c => new string(c)));

    private static readonly Gen<string> RandomPath = Gen.Select(Gen.Bool, PathSegment.Array[0, 10]).Select((absolute, segments) => (absolute ? "/" : "") + string.Join('/', segments));

    [Fact]
    public void ResolvedFtpPathsAreAbsoluteNormalAndNeverAboveTheRoot() =>
        Gen.Select(RandomPath, RandomPath).Sample((current, argument) =>
        {
            var resolved = FtpPath.Resolve(FtpPath.Normalize(current), argument);
            Assert.StartsWith("/", resolved, StringComparison.Ordinal);
            Assert.All(FtpPath.Segments(resolved), s => Assert.DoesNotContain(s, NotNormal));
            Assert.True(resolved == "/" || !resolved.EndsWith('/'), resolved);
            Assert.Equal(resolved, FtpPath.Normalize(resolved)); // idempotent
            if (argument.StartsWith('/'))
            {
                Assert.Equal(FtpPath.Normalize(argument), resolved); // an absolute argument ignores the current directory
            }

            // Every segment of the result was in the input: nothing invented, ".." only removes.
            var given = current.Split('/').Concat(argument.Split('/')).ToHashSet(StringComparer.Ordinal);
            Assert.All(FtpPath.Segments(resolved), s => Assert.Contains(s, given));
        }, iter: Iterations * 3);

    private static readonly Gen<byte[]> RpcBody = Gen.OneOf(
        Gen.Byte.Array[0, 200],
        Gen.String[0, 60].Select(s => Encoding.UTF8.GetBytes(s)),
        Gen.Select(Gen.OneOf(Gen.Const("ping"), Gen.Const("PING"), Gen.Const("nosuch"), Gen.Const(""), Gen.Const("whoami")), Gen.OneOf(Gen.Const("null"), Gen.Const("1"), Gen.Const("\"x\""), Gen.Const("{\"a\":[1,{}]}"), Gen.Const("[")))
            .Select((method, parameters) => Encoding.UTF8.GetBytes($"{{\"in\":\"{method}\",\"params\":{parameters}}}")),
        Gen.OneOf(Gen.Const("{}"), Gen.Const("[]"), Gen.Const("{\"in\":1}"), Gen.Const("{\"in\":\"ping\""), Gen.Const("\"in\"")).Select(s => Encoding.UTF8.GetBytes(s)));

    [Fact]
    public void EveryRandomRpcFrameInRandomPiecesGetsExactlyOneReplyInOrderAndPingStillWorks() =>
        Gen.Select(RpcBody.Array[1, 10], Cuts).Sample((bodies, cuts) =>
        {
            using var connection = new InMemoryConnection();
            using var client = new RpcClient(connection.ClientPipe);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            var handler = connection.RunAsync(new RpcHandler(new ProtocolLimits { MaxFrameBytes = 4096, IdleTimeout = TimeSpan.Zero }));
            var stream = Frames(bodies.Append("{\"in\":\"ping\",\"params\":\"after\",\"id\":1}"u8.ToArray()));
            foreach (var piece in Split(stream, cuts))
            {
                connection.ClientOutput.Write(piece.Span);
                connection.ClientOutput.FlushAsync(timeout.Token).AsTask().GetAwaiter().GetResult();
            }

            connection.ClientOutput.Complete();
            var replies = new List<RpcResponse>();
            while (client.ReceiveAsync(timeout.Token).AsTask().GetAwaiter().GetResult() is { } reply)
            {
                replies.Add(reply);
            }

            handler.WaitAsync(timeout.Token).GetAwaiter().GetResult();
            Assert.Equal(bodies.Length + 1, replies.Count);
            Assert.All(replies.SkipLast(1), r => Assert.True(r.Out is "pong" or "error" or "whoami", r.Out));
            Assert.Equal(("pong", "after"), (replies[^1].Out, replies[^1].Result.GetString()));
        }, iter: 100);
}
