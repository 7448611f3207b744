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
/// More property tests of the parsers (CsCheck), at their boundaries: random streams through the read loop the
/// handlers use, the size limits, the byte-to-text step of FTP command lines (encodings, Telnet bytes), the file
/// store's root, and the RPC connection's end. <see cref="ParserPropertyTests"/> holds the first set.
/// </summary>
public sealed class ParserPropertyBoundaryTests
{
    private const int Iterations = 300;
    private static readonly Encoding StrictUtf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);
    private static readonly byte[] CrLf = "\r\n"u8.ToArray();
    private static readonly byte[] Lf = "\n"u8.ToArray();

    private static readonly Gen<int[]> Cuts = Gen.Int[0, int.MaxValue].Array[0, 24];

    private static List<ReadOnlyMemory<byte>> Pieces(byte[] stream, int[] cuts) => Streams.Pieces(stream, cuts);

    private static ReadOnlySequence<byte> Sequence(byte[] stream, int[] cuts) => Streams.Sequence(stream, cuts);

    private static (List<byte[]> Messages, MessageParseStatus Last, long Unparsed) ParseAll(
        IMessageReader<ReadOnlySequence<byte>> reader, ReadOnlySequence<byte> input, int maximum) => Streams.ParseAll(reader, input, maximum);

    /// <summary>
    /// Feeds the stream to <see cref="ProtocolReader"/> through a pipe, a piece and a flush at a time, reading
    /// every message as soon as it is buffered — a handler's loop. Returns the messages and the result that ended it.
    /// </summary>
    private static async Task<(List<byte[]> Messages, ProtocolReadResult<ReadOnlySequence<byte>> End)> ReadLoopAsync(
        IMessageReader<ReadOnlySequence<byte>> reader, byte[] stream, int[] cuts, int maximum)
    {
        var pipe = new Pipe();
        var frames = new ProtocolReader(pipe.Reader, maximum);
        var messages = new List<byte[]>();
        foreach (var piece in Pieces(stream, cuts))
        {
            await pipe.Writer.WriteAsync(piece);
            while (frames.TryRead(reader, out var read))
            {
                if (!read.IsMessage)
                {
                    return (messages, read);
                }

                messages.Add(read.Message.ToArray());
                frames.Advance();
            }
        }

        await pipe.Writer.CompleteAsync();
        while (true)
        {
            var read = await frames.ReadAsync(reader);
            if (!read.IsMessage)
            {
                return (messages, read);
            }

            messages.Add(read.Message.ToArray());
            frames.Advance();
        }
    }

    private static byte[] Frame(byte[] body)
    {
        var frame = new byte[LengthPrefixedFrameReader.HeaderLength + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        body.CopyTo(frame, LengthPrefixedFrameReader.HeaderLength);
        return frame;
    }

    private static byte[] Header(uint length)
    {
        var header = new byte[LengthPrefixedFrameReader.HeaderLength];
        BinaryPrimitives.WriteUInt32LittleEndian(header, length);
        return header;
    }

    private static readonly Gen<byte[]> LineContent = Gen.Byte.Where(b => b is not ((byte)'\r' or (byte)'\n')).Array[0, 120];

    // Streams that are partly well-formed, so the read loop gets past the first bytes: valid frames or lines
    // mixed with runs of random bytes.
    private static readonly Gen<byte[]> FrameStream = Gen.Frequency((1, Gen.Byte.Array[0, 40]), (3, Gen.Byte.Array[0, 120].Select(Frame)))
        .Array[0, 20].Select(chunks => chunks.SelectMany(c => c).ToArray());

    private static readonly Gen<byte[]> LineStream = Gen.OneOf(Gen.Byte.Array[0, 40], Gen.Select(LineContent, Gen.Bool).Select((line, crlf) => line.Concat(crlf ? CrLf : Lf).ToArray()))
        .Array[0, 20].Select(chunks => chunks.SelectMany(c => c).ToArray());

    private static async Task AssertReadLoopParsesAsJoined(IMessageReader<ReadOnlySequence<byte>> reader, byte[] stream, int[] cuts, int maximum)
    {
        var joined = ParseAll(reader, new ReadOnlySequence<byte>(stream), maximum);
        var (messages, end) = await ReadLoopAsync(reader, stream, cuts, maximum);
        Assert.Equal(joined.Messages, messages);
        Assert.All(messages, m => Assert.InRange(m.Length, 0, maximum));
        if (joined.Last == MessageParseStatus.TooLarge)
        {
            Assert.Equal(ProtocolReadStatus.TooLarge, end.Status);
        }
        else
        {
            Assert.Equal(MessageParseStatus.Incomplete, joined.Last);
            Assert.Equal((ProtocolReadStatus.Completed, joined.Unparsed), (end.Status, end.UnparsedBytes));
        }
    }

    [Fact]
    public Task RandomFrameStreamsInRandomPiecesThroughTheReadLoopGiveTheJoinedMessagesThenTooLargeOrCompleted() =>
        Gen.Select(FrameStream, Cuts, Gen.Int[1, 300]).SampleAsync(
            (stream, cuts, maximum) => AssertReadLoopParsesAsJoined(LengthPrefixedFrameReader.Instance, stream, cuts, maximum),
            iter: Iterations);

    [Fact]
    public Task RandomLineStreamsInRandomPiecesThroughTheReadLoopGiveTheJoinedMessagesThenTooLargeOrCompleted() =>
        Gen.Select(LineStream, Cuts, Gen.Int[1, 150]).SampleAsync(
            (stream, cuts, maximum) => AssertReadLoopParsesAsJoined(LineReader.Instance, stream, cuts, maximum),
            iter: Iterations);

    [Fact]
    public void FramesOfSeveralKiBUpToTheLimitSplitAnywhereAreReadAndTheFirstOneOverItIsTooLarge() =>
        Gen.Select(Gen.Byte.Array[0, 8192].Array[1, 6], Cuts).Sample((bodies, cuts) =>
        {
            // The largest body is exactly at the limit; then a header one byte over it, with a little of its body.
            var maximum = Math.Max(1, bodies.Max(b => b.Length));
            var stream = bodies.SelectMany(Frame).Concat(Header((uint)maximum + 1)).Concat(new byte[cuts.Length]).ToArray();
            var (messages, last, _) = ParseAll(LengthPrefixedFrameReader.Instance, Sequence(stream, cuts), maximum);
            Assert.Equal(bodies, messages);
            Assert.Equal(MessageParseStatus.TooLarge, last);
        }, iter: 100);

    [Fact]
    public void ALineIsAMessageUpToTheLimitAndTooLargePastItHoweverItIsSplit() =>
        Gen.Select(Gen.Int[1, 600], Gen.Byte.Where(b => b is not ((byte)'\r' or (byte)'\n')).Array[0, 700], Gen.Int[0, 2], Cuts)
            .Sample((maximum, content, ending, cuts) =>
            {
                var terminator = ending switch { 0 => [], 1 => Lf, _ => CrLf };
                var (messages, last, _) = ParseAll(LineReader.Instance, Sequence([.. content, .. terminator], cuts), maximum);
                if (terminator.Length > 0 && content.Length <= maximum)
                {
                    Assert.Equal(content, Assert.Single(messages));
                    Assert.Equal(MessageParseStatus.Incomplete, last);
                }
                else
                {
                    // Unterminated, a line can still become one of the limit plus CRLF; past that it is TooLarge
                    // without waiting for more.
                    Assert.Empty(messages);
                    var tooLarge = terminator.Length > 0 || content.Length > maximum + 2;
                    Assert.Equal(tooLarge ? MessageParseStatus.TooLarge : MessageParseStatus.Incomplete, last);
                }
            }, iter: Iterations);

    // Any Unicode scalar value, mostly ASCII: strings that are valid UTF-8 when encoded.
    private static readonly Gen<string> ScalarValue = Gen.OneOf(
        Gen.Int[0x20, 0x7E], Gen.Int[0x20, 0x7E], Gen.Int[0x20, 0x7E], Gen.Const(0x20), Gen.Const(0x09), Gen.Int[0x00, 0x1F].Where(c => c is not (0x0D or 0x0A)),
        Gen.Int[0x80, 0x7FF], Gen.Int[0x800, 0xD7FF], Gen.Int[0xE000, 0xFFFF], Gen.Int[0x10000, 0x10FFFF]).Select(char.ConvertFromUtf32);

    private static readonly Gen<string> UnicodeText = ScalarValue.Array[0, 40].Select(string.Concat);

    private static readonly (string Name, FtpVerb Verb)[] KnownVerbs =
    [
        .. Enum.GetValues<FtpVerb>().Where(v => v != FtpVerb.Unknown).Select(v => (v.ToString().ToUpperInvariant(), v)),
        ("XPWD", FtpVerb.Pwd), ("XCWD", FtpVerb.Cwd), ("XCUP", FtpVerb.Cdup), ("XMKD", FtpVerb.Mkd), ("XRMD", FtpVerb.Rmd),
    ];

    private static string InRandomCase(string name, bool[] upper) =>
        new(name.Select((c, i) => upper[i % upper.Length] ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c)).ToArray());

    private static FtpCommand ParseBytes(byte[] line) => FtpCommandParser.Parse(new ReadOnlySequence<byte>(line));

    [Fact]
    public void AKnownVerbInAnyCaseKeepsAUnicodeArgumentVerbatimAndParsesAlikeFromBytesAndFromText() =>
        Gen.Select(Gen.Int[0, KnownVerbs.Length - 1], Gen.Bool.Array[1, 8], Gen.OneOf(Gen.Const(""), Gen.Const(" "), Gen.Const("\t "), Gen.Const("  ")), UnicodeText)
            .Sample((index, upper, indent, argument) =>
            {
                var (name, verb) = KnownVerbs[index];
                var line = $"{indent}{InRandomCase(name, upper)} {argument}";
                var fromText = FtpCommandParser.Parse(line);
                Assert.Equal((verb, name, argument), (fromText.Verb, fromText.Name, fromText.Argument));
                Assert.Equal(fromText, ParseBytes(Encoding.UTF8.GetBytes(line)));
            }, iter: Iterations);

    [Fact]
    public void AnyTextParsesWithoutThrowingAndWithoutLineBreaksAsLoggedParsesBackToTheSameCommand() =>
        Gen.OneOf(
                Gen.String[0, 80],
                UnicodeText,
                Gen.Char[" \t\r\nAaBbPpSsUuEeRr\u0131\u017f\u00df\u01c5"].Array[0, 30].Select(c => new string(c)),
                Gen.Select(Gen.Int[0, KnownVerbs.Length - 1], Gen.Bool.Array[1, 8], Gen.OneOf(Gen.String[0, 40], UnicodeText), Gen.OneOf(Gen.Const(""), Gen.Const("\r\n"), Gen.Const("\n\r")))
                    .Select((index, upper, argument, ending) => $"{InRandomCase(KnownVerbs[index].Name, upper)} {argument}{ending}"))
            .Sample(text =>
            {
                var command = FtpCommandParser.Parse(text);
                Assert.DoesNotContain(' ', command.Name);
                Assert.Equal(command.Name.ToUpperInvariant(), command.Name);
                if (command.Verb != FtpVerb.Pass && !text.AsSpan().ContainsAny('\r', '\n'))
                {
                    // What a log line shows is the command itself, not a lossy rendering of it.
                    Assert.Equal(command, FtpCommandParser.Parse(command.ToString()));
                }
            }, iter: Iterations * 3);

    // Telnet commands as a client may send them amid a line: IAC with a two-byte command (IP, DM, NOP, ...) or
    // IAC WILL/WONT/DO/DONT with its option byte, which may be any byte, 0xFF included.
    private static readonly Gen<byte[]> TelnetCommand = Gen.OneOf(
        Gen.Byte[240, 250].Select(command => new byte[] { 255, command }),
        Gen.Select(Gen.Byte[251, 254], Gen.Byte).Select((command, option) => new byte[] { 255, command, option }));

    // A cut-off command at the very end of a line: IAC alone, or IAC WILL without its option.
    private static readonly Gen<byte[]> TornTelnetCommand = Gen.OneOf(Gen.Const(Array.Empty<byte>()), Gen.Const(new byte[] { 255 }), Gen.Byte[251, 254].Select(command => new byte[] { 255, command }));

    private static string DecodeAsTheServerPromises(byte[] data)
    {
        try
        {
            return StrictUtf8.GetString(data);
        }
        catch (DecoderFallbackException)
        {
            return Encoding.Latin1.GetString(data);
        }
    }

    [Fact]
    public void TelnetCommandsAnywhereInALineAreIgnoredAndAnEscapedIacIsOneDataByte() =>
        Gen.Select(
                Gen.OneOf(Gen.Byte.Array[0, 60], UnicodeText.Select(Encoding.UTF8.GetBytes), Gen.Byte[250, 255].Array[0, 12]),
                Gen.Select(Gen.Int[0, int.MaxValue], TelnetCommand).Array[0, 6],
                TornTelnetCommand)
            .Sample((data, commands, torn) =>
            {
                // The data with every 0xFF escaped as IAC IAC, and the commands inserted between data bytes.
                var line = new List<byte>();
                var at = commands.ToLookup(c => c.Item1 % (data.Length + 1), c => c.Item2);
                for (var i = 0; i <= data.Length; i++)
                {
                    foreach (var command in at[i])
                    {
                        line.AddRange(command);
                    }

                    if (i < data.Length)
                    {
                        line.AddRange(data[i] == 255 ? [255, 255] : [data[i]]);
                    }
                }

                line.AddRange(torn);
                Assert.Equal(FtpCommandParser.Parse(DecodeAsTheServerPromises(data)), ParseBytes([.. line]));
            }, iter: Iterations * 3);

    [Fact]
    public void APassCommandIsLoggedTheSameWhateverThePasswordAndSpelling() =>
        Gen.Select(Gen.Bool.Array[1, 4], Gen.OneOf(UnicodeText, Gen.Byte.Array[0, 40].Select(DecodeAsTheServerPromises), Gen.Const("PASS ****"), Gen.Const("*")), Gen.Bool)
            .Sample((upper, password, asBytes) =>
            {
                var line = $"{InRandomCase("pass", upper)} {password}";
                var command = asBytes ? ParseBytes(Encoding.UTF8.GetBytes(line)) : FtpCommandParser.Parse(line);
                Assert.Equal(FtpVerb.Pass, command.Verb);
                Assert.Equal("PASS ****", command.ToString());
            }, iter: Iterations);

    private static readonly Gen<string> PathSegment = Gen.OneOf(
        Gen.Const(".."), Gen.Const("."), Gen.Const(""), Gen.Const("..\\.."), Gen.Const("\\"), Gen.Const("..\\"), Gen.Const("\\.."),
        Gen.Const("pub"), Gen.Const("real"), Gen.Const("out"), Gen.Const("up"), Gen.Const("hop"), Gen.Const("secret.txt"), Gen.Const("inside.txt"),
        Gen.Const(FtpFileStore.UploadPrefix + "x"), ScalarValue.Array[1, 6].Select(string.Concat));

    // Random paths, and paths to each file by every way in or out, so that some do reach a file.
    private static readonly Gen<string> VirtualPath = Gen.OneOf(
        Gen.Select(Gen.Bool, PathSegment.Array[0, 12]).Select((absolute, segments) => (absolute ? "/" : "") + string.Join('/', segments)),
        Gen.Select(Gen.OneOf(Gen.Const(""), Gen.Const("/"), Gen.Const("../../"), Gen.Const("/pub/real/../")), Gen.OneOf(
            Gen.Const("pub/real/inside.txt"), Gen.Const("pub/real/real/real/inside.txt"), Gen.Const("real/inside.txt"), Gen.Const("inside.txt"),
            Gen.Const("out/secret.txt"), Gen.Const("hop/secret.txt"), Gen.Const("pub/up/outside/secret.txt"), Gen.Const("../outside/secret.txt"))).Select((from, target) => from + target));

    [Fact]
    public void EveryRandomPathResolvesToOneTheFileStoreMapsInsideItsRootOrNotAtAll()
    {
        // A root whose links point in and out of it, beside a directory that must stay out of reach.
        var sandbox = Directory.CreateTempSubdirectory("gateway-ftp-property-");
        try
        {
            var root = Path.Join(sandbox.FullName, "root");
            var outside = Path.Join(sandbox.FullName, "outside");
            Directory.CreateDirectory(Path.Join(root, "pub", "real"));
            Directory.CreateDirectory(outside);
            File.WriteAllText(Path.Join(root, "pub", "real", "inside.txt"), "inside");
            File.WriteAllText(Path.Join(outside, "secret.txt"), "secret");
            Directory.CreateSymbolicLink(Path.Join(root, "out"), outside);
            Directory.CreateSymbolicLink(Path.Join(root, "pub", "up"), "../..");
            Directory.CreateSymbolicLink(Path.Join(root, "hop"), Path.Join(root, "out"));
            Directory.CreateSymbolicLink(Path.Join(root, "pub", "real", "real"), Path.Join(root, "pub"));
            var store = new FtpFileStore(root);

            Gen.Select(VirtualPath, VirtualPath).Sample((current, argument) =>
            {
                var resolved = FtpPath.Resolve(FtpPath.Resolve(FtpPath.Root, current), argument);
                Assert.Equal(resolved, FtpPath.Normalize(resolved));
                if (store.MapPath(resolved) is not { } physical)
                {
                    return;
                }

                var full = Path.GetFullPath(physical);
                Assert.True(full == store.RootPath || full.StartsWith(store.RootPath + Path.DirectorySeparatorChar, StringComparison.Ordinal), full);
                if (File.Exists(full))
                {
                    Assert.NotEqual("secret", File.ReadAllText(full));
                }
            }, iter: Iterations * 3);
        }
        finally
        {
            sandbox.Delete(recursive: true);
        }
    }

    private static readonly Gen<byte[]> GarbageBody = Gen.OneOf(
        Gen.Byte.Array[0, 200],
        Gen.String[0, 60].Select(Encoding.UTF8.GetBytes),
        Gen.OneOf(Gen.Const("{}"), Gen.Const("[]"), Gen.Const("{\"in\":1}"), Gen.Const("{\"in\":\"nosuch\",\"params\":[1,{}]}"), Gen.Const("{\"in\":\"ping\""), Gen.Const("null"))
            .Select(Encoding.UTF8.GetBytes));

    private const int RpcLimit = 4096;

    // How the stream ends after its whole frames: cleanly, inside a frame, or with a header over the limit.
    private enum Ending { Clean, Torn, TooLarge }

    [Fact]
    public Task EveryWholeRpcFrameGetsOneReplyInOrderThenATornFrameEndsQuietlyAndAnOversizedOneGetsTooLarge() =>
        Gen.Select(Gen.OneOf(GarbageBody, Gen.Const<byte[]>([])).Array[0, 10], Gen.Bool.Array[10], Gen.Enum<Ending>(), Gen.Int[1, 64], Cuts)
            .SampleAsync(async (garbage, isPing, ending, tail, cuts) =>
            {
                // Pings (answered "pong" with their own id) among the garbage show the replies come in order.
                var bodies = garbage.Select((body, i) => isPing[i] ? Encoding.UTF8.GetBytes($"{{\"in\":\"ping\",\"params\":\"p{i}\",\"id\":{i}}}") : body).ToArray();
                var stream = bodies.SelectMany(Frame).Concat(ending switch
                {
                    Ending.Torn => Frame(new byte[tail])[..tail], // a header and part of a body, or part of a header
                    Ending.TooLarge => [.. Header(RpcLimit + (uint)tail), .. new byte[tail]],
                    _ => [],
                }).ToArray();

                using var connection = new InMemoryConnection();
                using var client = new RpcClient(connection.ClientPipe);
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
                var handler = connection.RunAsync(new RpcHandler(new ProtocolLimits { MaxFrameBytes = RpcLimit, IdleTimeout = TimeSpan.Zero }));
                foreach (var piece in Pieces(stream, cuts))
                {
                    await connection.ClientOutput.WriteAsync(piece, timeout.Token);
                }

                await connection.ClientOutput.CompleteAsync();
                var replies = new List<RpcResponse>();
                while (await client.ReceiveAsync(timeout.Token) is { } reply)
                {
                    replies.Add(reply);
                }

                await handler.WaitAsync(timeout.Token); // ends, and without an exception
                Assert.Equal(bodies.Length + (ending == Ending.TooLarge ? 1 : 0), replies.Count);
                for (var i = 0; i < bodies.Length; i++)
                {
                    if (isPing[i])
                    {
                        Assert.Equal(("pong", $"p{i}", i), (replies[i].Out, replies[i].Result.GetString(), replies[i].Id?.GetInt32()));
                    }
                }

                if (ending == Ending.TooLarge)
                {
                    Assert.Equal(RpcErrorCodes.TooLarge, replies[^1].ErrorCode);
                }
            }, iter: 100);
}
