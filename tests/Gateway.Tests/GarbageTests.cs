using System.Buffers.Binary;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Protocols.Ftp;

namespace Gateway.Tests;

/// <summary>
/// Random and malformed bytes on every port: no process crashes, the clients connected before the garbage are
/// still served, each protocol answers with its own error or closes cleanly, and the errors are counted. Each
/// garbage connection's outcome is predicted from its bytes (how the RPC framing and the FTP line reader cut
/// them) and checked exactly. The blobs come from a seeded generator; a failure names the seed and the blob,
/// and <c>GARBAGE_SEED=n</c> in the environment replays (or explores) another seed.
/// </summary>
public sealed partial class GarbageTests
{
    // Set on the command line, not taken from appsettings.json: the predictions below frame with them.
    private const int MaxFrameBytes = 1024 * 1024;
    private const int MaxFtpLine = FtpCommandParser.MaxLineBytes;
    private const string FtpPassword = "alice-pw";

    // One wait for one connection's replies or close; the whole test is bounded by Budget.
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private static readonly TimeSpan Budget = TimeSpan.FromSeconds(50);

    // The error codes after which an RPC connection stays usable (too_large and too_slow close it).
    private static readonly string[] RecoverableRpcCodes = ["bad_json", "bad_request", "unknown_method", "bad_params"];

    /// <summary>
    /// The models that serve many connections at once. The loop server (iterative) and the sync pool
    /// (prefork-sync: one connection per worker) would hold every garbage connection behind the well-behaved
    /// clients kept open across the test, which is their design, not a fault.
    /// </summary>
    [Theory]
    [MemberData(nameof(Models.Concurrent), MemberType = typeof(Models))]
    public async Task GarbageOnEveryPortHarmsNoOtherConnectionAndEachProtocolAnswersWithItsError(string model)
    {
        var seed = SeedFor(model);
        var random = new Random(seed);
        using var root = new TemporaryDirectory("gateway-garbage-ftp-");
        Directory.CreateDirectory(Path.Join(root.Path, "alice"));
        await using var gateway = await GatewayProcess.StartAsync(
        [
            .. GatewayProcess.LoopbackArgs, .. Models.Args(model, "Echo", "Rpc", "Ftp"),
            $"--Gateway:Limits:MaxFrameBytes={MaxFrameBytes}",
            $"--Gateway:Listeners:Ftp:Root={root.Path}",
            "--Gateway:Listeners:Ftp:Users:0:Name=alice", $"--Gateway:Listeners:Ftp:Users:0:PasswordHash={FtpPasswordHasher.Hash(FtpPassword, 1000)}",
        ]);
        using var budget = new CancellationTokenSource(Budget);
        var ftpEndpoint = gateway.Endpoint("ftp");
        using var admin = new AdminApi(gateway);

        // The well-behaved clients, connected before any garbage and kept open across it.
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, budget.Token);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: budget.Token)).Out);
        using var echo = await RawConnection.OpenAsync(gateway.Echo, budget.Token);
        await AssertEchoesAsync(echo, "before");
        using var ftp = await RawConnection.OpenAsync(ftpEndpoint, budget.Token);
        await AssertFtpLoginAsync(ftp);
        var errorsBefore = await admin.MetricsAsync(budget.Token);

        var rpcBlobs = RpcBlobs(random);
        var ftpBlobs = FtpBlobs(random);
        var echoBlobs = EchoBlobs(random);

        // All of it at once, a connection per blob.
        var rpcRuns = rpcBlobs.Select(b => RunRpcAsync(gateway.Rpc, b, $"RPC, {b.Name}, model {model}, seed {seed}", budget.Token)).ToList();
        var ftpRuns = ftpBlobs.Select(b => RunFtpAsync(ftpEndpoint, b, $"FTP, {b.Name}, model {model}, seed {seed}", budget.Token)).ToList();
        var echoRuns = echoBlobs.Select(b => RunEchoAsync(gateway.Echo, b, $"echo, {b.Name}, model {model}, seed {seed}", budget.Token)).ToList();
        await Task.WhenAll([.. rpcRuns, .. ftpRuns, .. echoRuns]); // every run ends before the first failure is reported
        var rpcErrors = rpcRuns.Sum(run => run.Result);
        var ftpErrors = ftpRuns.Sum(run => run.Result);

        // Nobody else was harmed: the process runs, the earlier clients are served on their same connections,
        // new clients too.
        Assert.False(gateway.HasExited, $"the gateway exited (model {model}, seed {seed}):\n{gateway.Output}");
        Assert.Equal("after", (await rpc.Client.CallAsync("ping", "after", cancellationToken: budget.Token)).Result.GetString());
        await AssertEchoesAsync(echo, "after");
        var afterCodes = await FtpExchangeAsync(ftp, "NOOP\r\nPWD\r\n", 2);
        Assert.Equal([200, 257], afterCodes);
        await using var newRpc = await RpcConnection.OpenAsync(gateway.Rpc, budget.Token);
        Assert.Equal("pong", (await newRpc.Client.CallAsync("ping", cancellationToken: budget.Token)).Out);
        using var newEcho = await RawConnection.OpenAsync(gateway.Echo, budget.Token);
        await AssertEchoesAsync(newEcho, "new");
        using var newFtp = await RawConnection.OpenAsync(ftpEndpoint, budget.Token);
        await AssertFtpLoginAsync(newFtp);
        Assert.Equal(HttpStatusCode.OK, (await admin.Http.GetAsync(new Uri("/healthz", UriKind.Relative), budget.Token)).StatusCode);

        // Every error answered was counted, once (a prefork worker's counts reach the supervisor with its next
        // heartbeat, so they are waited for).
        var metrics = "";
        for (var attempt = 0; attempt < 60; attempt++)
        {
            metrics = await admin.MetricsAsync(budget.Token);
            if (ProtocolErrors(metrics, "rpc") - ProtocolErrors(errorsBefore, "rpc") == rpcErrors
                && ProtocolErrors(metrics, "ftp") - ProtocolErrors(errorsBefore, "ftp") == ftpErrors)
            {
                break;
            }

            await Task.Delay(250, budget.Token);
        }

        Assert.True(ProtocolErrors(metrics, "rpc") - ProtocolErrors(errorsBefore, "rpc") == rpcErrors,
            $"model {model}, seed {seed}: {rpcErrors} RPC error replies, counted: {ErrorLines(metrics, "rpc")} (before: {ErrorLines(errorsBefore, "rpc")})");
        Assert.True(ProtocolErrors(metrics, "ftp") - ProtocolErrors(errorsBefore, "ftp") == ftpErrors,
            $"model {model}, seed {seed}: {ftpErrors} FTP error replies, counted: {ErrorLines(metrics, "ftp")} (before: {ErrorLines(errorsBefore, "ftp")})");
        Assert.False(gateway.HasExited, gateway.Output);

        async Task AssertEchoesAsync(RawConnection connection, string text)
        {
            var expected = connection.Received.Length + text.Length;
            Assert.True(await connection.SendAsync(Encoding.ASCII.GetBytes(text)), $"model {model}: echo send failed");
            Assert.True(await connection.WaitForAsync(r => r.Length >= expected, Patience), $"model {model}: '{text}' was not echoed");
            Assert.Equal(text, Encoding.ASCII.GetString(connection.Received.AsSpan(expected - text.Length)));
        }

        async Task AssertFtpLoginAsync(RawConnection connection)
        {
            var greeting = await FtpExchangeAsync(connection, "", 1);
            Assert.Equal([220], greeting);
            var login = await FtpExchangeAsync(connection, $"USER alice\r\nPASS {FtpPassword}\r\nNOOP\r\n", 3);
            Assert.Equal([331, 230, 200], login);
        }
    }

    [Fact]
    public async Task GarbageOnTheAdminPortGetsAnHttpErrorOrACloseAndTheApiKeepsAnswering()
    {
        var seed = SeedFor("admin");
        var random = new Random(seed);
        await using var gateway = await GatewayProcess.StartAsync();
        using var admin = new AdminApi(gateway);
        Assert.Equal(HttpStatusCode.OK, (await admin.Http.GetAsync(new Uri("/healthz", UriKind.Relative))).StatusCode);
        var endpoint = new IPEndPoint(IPAddress.Loopback, gateway.Admin.Port);
        using var budget = new CancellationTokenSource(Budget);

        List<Blob> blobs =
        [
            new("random bytes, a few", RandomBytes(random, 1, 64)),
            new("random bytes, a few KiB", RandomBytes(random, 1024, 8192)),
            new("random bytes, a few hundred KiB", RandomBytes(random, 100 * 1024, 400 * 1024)),
            new("NUL bytes", new byte[4096]),
            new("a 100 KiB request target", Encoding.ASCII.GetBytes($"GET /{new string('a', 100 * 1024)} HTTP/1.1\r\nHost: gateway\r\n\r\n")),
            new("a 100 KiB header", Encoding.ASCII.GetBytes($"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Big: {new string('b', 100 * 1024)}\r\n\r\n")),
            new("a header line without a colon", "GET /healthz HTTP/1.1\r\nHost: gateway\r\nno colon here\r\n\r\n"u8.ToArray()),
            new("control bytes in a header", [.. "GET /healthz HTTP/1.1\r\nHost: gate"u8.ToArray(), 0, 0xFF, 0x7F, .. "way\r\n\r\n"u8.ToArray()]),
            new("an unknown HTTP version", "GET /healthz HTTP/9.9\r\nHost: gateway\r\n\r\n"u8.ToArray()),
            new("a TLS ClientHello", [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03, .. RandomBytes(random, 500, 501)]),
            new("the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray()),
        ];

        await Task.WhenAll(blobs.Select(async blob =>
        {
            var context = $"admin, {blob.Name}, seed {seed}";
            using var connection = await RawConnection.OpenAsync(endpoint, budget.Token);
            await connection.SendAsync(blob.Bytes);
            connection.EndSending();
            Assert.True(await connection.WaitForCloseAsync(Patience), $"{context}: not closed within {Patience}");
            var reply = connection.Received;
            var text = Encoding.Latin1.GetString(reply.AsSpan(0, Math.Min(reply.Length, 200)));
            // An HTTP/1.1 client error (or 505 for the version), nothing at all, or for the HTTP/2 preface on this
            // HTTP/1.1 endpoint, an HTTP/2 GOAWAY frame (type 7): every one a refusal, none a 500 from the app.
            Assert.True(reply.Length == 0 || HttpRefusal().IsMatch(text) || (reply.Length >= 9 && reply[3] == 7),
                $"{context}: answered {reply.Length} bytes: {text}");
        }));

        Assert.False(gateway.HasExited, gateway.Output);
        Assert.Equal(HttpStatusCode.OK, (await admin.Http.GetAsync(new Uri("/healthz", UriKind.Relative), budget.Token)).StatusCode);
        Assert.Contains("gateway_connections_active", await admin.MetricsAsync(budget.Token), StringComparison.Ordinal);
        using var connections = await admin.Http.GetAsync(new Uri("/admin/connections", UriKind.Relative), budget.Token);
        Assert.Equal(HttpStatusCode.OK, connections.StatusCode);
    }

    private sealed record Blob(string Name, byte[] Bytes);

    /// <summary>An RPC blob; <paramref name="Replies"/>, when given, are the exact codes and ids of its error replies.</summary>
    private sealed record RpcBlob(string Name, byte[] Bytes, (string Code, string? Id)[]? Replies = null);

    /// <summary>An FTP blob, sent on a fresh connection or, with <paramref name="LogIn"/>, after logging in as alice.</summary>
    private sealed record FtpBlob(string Name, byte[] Bytes, bool LogIn = false);

    private static List<RpcBlob> RpcBlobs(Random random) =>
    [
        new("random bytes", RandomBytes(random, 1, 256 * 1024)),
        new("a few random bytes", RandomBytes(random, 1, 16)),
        new("a header announcing 4 GiB", [0xF0, 0xFF, 0xFF, 0xFF, .. RandomBytes(random, 1, 64)]),
        new("a header one byte over the limit", [.. LittleEndian(MaxFrameBytes + 1), .. RandomBytes(random, 1, 4096)]),
        new("a frame of invalid JSON", Frame("{\"in\":\"ping\",\"params\":[1,2"u8.ToArray()), [("bad_json", null)]),
        new("a frame of random bytes", Frame(RandomBytes(random, 1, 4000))),
        new("frames of JSON that is no request",
            [
                .. Frame("[]"u8.ToArray()), .. Frame("{\"in\":7}"u8.ToArray()), .. Frame("\"in\""u8.ToArray()), .. Frame([]),
                .. Frame("{\"in\":\"no-such-method\",\"id\":42}"u8.ToArray()), .. Frame("{\"in\":\"sum\",\"params\":\"x\",\"id\":\"s\"}"u8.ToArray()),
                .. Frame([.. "{\"in\":\""u8.ToArray(), 0xC3, 0x28, .. "\"}"u8.ToArray()]),
            ],
            [("bad_request", null), ("bad_request", null), ("bad_request", null), ("bad_json", null), ("unknown_method", "42"), ("bad_params", "\"s\""), ("bad_json", null)]),
        new("an HTTP request", "GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"u8.ToArray()),
        new("NUL bytes", new byte[10_000], [.. Enumerable.Repeat(("bad_json", (string?)null), 2500)]),
        new("a frame cut short", [.. LittleEndian(1000), .. RandomBytes(random, 10, 11)]),
    ];

    private static List<FtpBlob> FtpBlobs(Random random)
    {
        var withoutLineEnds = RandomBytes(random, 8 * 1024, 200 * 1024);
        withoutLineEnds.AsSpan().Replace((byte)'\n', (byte)'x');
        return
        [
            new("random bytes", RandomBytes(random, 1, 64 * 1024)),
            new("random bytes without a line end", withoutLineEnds),
            new("a 100 KiB line", Encoding.ASCII.GetBytes(new string('A', 100 * 1024) + "\r\n")),
            new("telnet commands", [0xFF, 0xF4, 0xFF, 0xF2, 0xFF, 0xFB, 0x01, 0xFF, 0xFF, .. "ABOR\r\n"u8.ToArray(), 0xFF, 0xFD, 0x03, 13, 10, 0xFF, 13, 10]),
            new("NUL-filled lines", [.. new byte[300], 13, 10, .. new byte[5], 13, 10, 0, 10]),
            new("random printable lines", Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 20).Select(_ => RandomPrintable(random) + "\r\n")))),
            new("invalid UTF-8 arguments", [.. "CWD "u8.ToArray(), 0xC3, 0x28, 0xA0, 0xA1, 13, 10, .. "MKD "u8.ToArray(), 0xF8, 0x88, 13, 10]),
            new("an HTTP request", "GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"u8.ToArray()),
            new("random lines after logging in", [.. Enumerable.Range(0, 20).SelectMany(_ => RandomLine(random))], LogIn: true),
            new("random bytes after logging in", RandomBytes(random, 1, 32 * 1024), LogIn: true),
        ];
    }

    private static List<Blob> EchoBlobs(Random random) =>
    [
        new("one random byte", RandomBytes(random, 1, 2)),
        new("random bytes", RandomBytes(random, 1, 4096)),
        new("random bytes, a few hundred KiB", RandomBytes(random, 64 * 1024, 300 * 1024)),
        new("more random bytes, a few hundred KiB", RandomBytes(random, 64 * 1024, 300 * 1024)),
        new("NUL bytes", new byte[50_000]),
        new("telnet commands", [.. Enumerable.Range(0, 1000).SelectMany(i => new byte[] { 0xFF, (byte)(0xF0 + (i % 16)), (byte)i })]),
        new("a 100 KiB line", Encoding.ASCII.GetBytes(new string('A', 100 * 1024) + "\r\n")),
        new("an HTTP request", "GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"u8.ToArray()),
    ];

    /// <summary>
    /// Sends the blob and checks the replies its framing predicts: an error frame for each complete frame; after a
    /// header over the limit, too_large and a close by the server (our side still open); after whole frames, the
    /// same connection still answers a ping; a torn last frame gets nothing and the close follows ours.
    /// Returns the error replies received.
    /// </summary>
    private static async Task<int> RunRpcAsync(IPEndPoint endpoint, RpcBlob blob, string context, CancellationToken cancellationToken)
    {
        var expected = Framing(blob.Bytes);
        context = $"{context} ({blob.Bytes.Length} bytes: {expected})";
        using var connection = await RawConnection.OpenAsync(endpoint, cancellationToken);
        await connection.SendAsync(blob.Bytes); // may fail part-way once the server has closed on too_large
        List<JsonElement> replies;
        if (expected.TooLarge)
        {
            Assert.True(await connection.WaitForCloseAsync(Patience), $"{context}: not closed by the server after a header over the limit");
            replies = ReplyFrames(connection.Received, context);
            Assert.True(replies.Count == expected.Frames + 1, $"{context}: {replies.Count} replies, then {connection.End}: {Describe(replies)}");
            AssertErrors(replies.Take(expected.Frames), blob.Replies, context);
            Assert.True(Code(replies[^1], context) == "too_large", $"{context}: the last reply is {replies[^1]}, not too_large");
            return replies.Count;
        }

        Assert.True(await connection.WaitForAsync(r => CountFrames(r) >= expected.Frames, Patience),
            $"{context}: {CountFrames(connection.Received)} replies, then {connection.End?.ToString() ?? "nothing"}");
        if (expected.EndsOnFrame)
        {
            // The connection stays usable: a request after the garbage is answered in turn.
            Assert.True(await connection.SendAsync(Frame("{\"in\":\"ping\",\"params\":\"still here\",\"id\":7}"u8.ToArray())), $"{context}: the ping could not be sent");
            Assert.True(await connection.WaitForAsync(r => CountFrames(r) > expected.Frames, Patience),
                $"{context}: no reply to a ping after the garbage, then {connection.End?.ToString() ?? "nothing"}");
        }

        connection.EndSending();
        Assert.True(await connection.WaitForCloseAsync(Patience), $"{context}: not closed after the client closed its side");
        Assert.True(connection.End == SocketError.Success, $"{context}: ended by {connection.End}, not a clean close");
        replies = ReplyFrames(connection.Received, context);
        Assert.True(replies.Count == expected.Frames + (expected.EndsOnFrame ? 1 : 0), $"{context}: {replies.Count} replies: {Describe(replies)}");
        AssertErrors(replies.Take(expected.Frames), blob.Replies, context);
        if (expected.EndsOnFrame)
        {
            var pong = replies[^1];
            Assert.True(pong.GetProperty("out").GetString() == "pong" && pong.GetProperty("result").GetString() == "still here" && pong.GetProperty("id").GetInt32() == 7,
                $"{context}: the ping after the garbage got {pong}");
        }

        return expected.Frames;
    }

    /// <summary>
    /// Sends the blob and checks the replies: the greeting, then only 5xx replies, one per line when every line is
    /// within the limit (then the same session still answers NOOP), and one for an over-long line too. Returns
    /// the error replies received.
    /// </summary>
    private static async Task<int> RunFtpAsync(IPEndPoint endpoint, FtpBlob blob, string context, CancellationToken cancellationToken)
    {
        var expected = Lines(blob.Bytes);
        context = $"{context} ({blob.Bytes.Length} bytes: {expected})";
        using var connection = await RawConnection.OpenAsync(endpoint, cancellationToken);
        int[] before = blob.LogIn ? [220, 331, 230] : [220];
        Assert.True(await connection.WaitForAsync(r => FtpReplyCodes(r, context, complete: false).Count >= 1, Patience), $"{context}: no greeting");
        if (blob.LogIn)
        {
            await connection.SendAsync(Encoding.ASCII.GetBytes($"USER alice\r\nPASS {FtpPassword}\r\n"));
            Assert.True(await connection.WaitForAsync(r => FtpReplyCodes(r, context, complete: false).Count >= 3, Patience), $"{context}: no answer to the login");
        }

        await connection.SendAsync(blob.Bytes);
        if (!expected.Overlong)
        {
            var wanted = before.Length + expected.Lines;
            Assert.True(await connection.WaitForAsync(r => FtpReplyCodes(r, context, complete: false).Count >= wanted, Patience),
                $"{context}: {FtpReplyCodes(connection.Received, context, complete: false).Count} replies of {wanted}, then {connection.End?.ToString() ?? "nothing"}: {Tail(connection.Received)}");
            if (expected.EndsOnLine)
            {
                // The session is still usable: the next command is answered in turn.
                await connection.SendAsync("NOOP\r\n"u8.ToArray());
                Assert.True(await connection.WaitForAsync(r => FtpReplyCodes(r, context, complete: false).Count > wanted, Patience), $"{context}: no answer to NOOP after the garbage");
            }
        }

        connection.EndSending();
        Assert.True(await connection.WaitForCloseAsync(Patience), $"{context}: not closed after the client closed its side");
        Assert.True(connection.End == SocketError.Success, $"{context}: ended by {connection.End}, not a clean close");
        var codes = FtpReplyCodes(connection.Received, context);
        Assert.True(codes.Take(before.Length).SequenceEqual(before), $"{context}: began with {string.Join(' ', codes)}");
        var garbage = codes.Skip(before.Length).ToList();
        if (!expected.Overlong && expected.EndsOnLine)
        {
            Assert.True(garbage.Count == expected.Lines + 1 && garbage[^1] == 200, $"{context}: replies {string.Join(' ', garbage)}; want {expected.Lines} errors, then 200");
            garbage.RemoveAt(garbage.Count - 1);
        }
        else if (!expected.Overlong)
        {
            Assert.True(garbage.Count == expected.Lines, $"{context}: replies {string.Join(' ', garbage)}; want {expected.Lines}");
        }
        else
        {
            // A line over the limit gets one "500 Command too long", however its bytes arrived, and the lines
            // behind it are answered in turn (the reader skips to the end of the long line).
            var wanted = expected.Lines + (expected.TailOverlong ? 1 : 0);
            Assert.True(garbage.Count == wanted, $"{context}: replies {string.Join(' ', garbage)}; want {wanted}");
        }

        Assert.True(garbage.All(code => code / 100 == 5), $"{context}: replies {string.Join(' ', garbage)}; want only 5xx");
        return garbage.Count;
    }

    /// <summary>Echo takes any bytes: all of them come back, in order, and the close follows the client's.</summary>
    private static async Task RunEchoAsync(IPEndPoint endpoint, Blob blob, string context, CancellationToken cancellationToken)
    {
        using var connection = await RawConnection.OpenAsync(endpoint, cancellationToken);
        Assert.True(await connection.SendAsync(blob.Bytes), $"{context}: sending failed, the server closed after {connection.Received.Length} bytes");
        connection.EndSending();
        Assert.True(await connection.WaitForCloseAsync(Patience), $"{context}: not closed after the client closed its side ({connection.Received.Length} of {blob.Bytes.Length} bytes back)");
        Assert.True(connection.End == SocketError.Success, $"{context}: ended by {connection.End}, not a clean close");
        var reply = connection.Received;
        Assert.True(blob.Bytes.AsSpan().SequenceEqual(reply), $"{context}: {reply.Length} bytes came back for {blob.Bytes.Length}, not the same");
    }

    /// <summary>Sends <paramref name="commands"/> and returns the next <paramref name="count"/> reply codes.</summary>
    private static async Task<int[]> FtpExchangeAsync(RawConnection connection, string commands, int count)
    {
        var already = connection.RepliesTaken;
        if (commands.Length > 0)
        {
            Assert.True(await connection.SendAsync(Encoding.ASCII.GetBytes(commands)), $"FTP client: could not send {commands}");
        }

        Assert.True(await connection.WaitForAsync(r => FtpReplyCodes(r, "FTP client", complete: false).Count >= already + count, Patience),
            $"FTP client: no answer to '{commands.Trim()}': {Tail(connection.Received)}");
        connection.RepliesTaken = already + count;
        return [.. FtpReplyCodes(connection.Received, "FTP client", complete: false).Skip(already).Take(count)];
    }

    /// <summary>How the RPC framing cuts a blob: complete frames, then a header over the limit, a torn frame or the end.</summary>
    private readonly record struct FrameCut(int Frames, bool TooLarge, bool EndsOnFrame);

    private static FrameCut Framing(byte[] blob)
    {
        var at = 0;
        var frames = 0;
        while (blob.Length - at >= 4)
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(blob.AsSpan(at));
            if (length > MaxFrameBytes)
            {
                return new(frames, TooLarge: true, EndsOnFrame: false);
            }

            if (blob.Length - at - 4 < length)
            {
                break;
            }

            frames++;
            at += 4 + (int)length;
        }

        return new(frames, TooLarge: false, EndsOnFrame: at == blob.Length);
    }

    /// <summary>
    /// How the FTP line reader cuts a blob: complete lines, whether any is over the limit, whether it ends on a line
    /// end, and whether an unterminated tail is over the limit (it then gets its one "too long" reply as well).
    /// </summary>
    private readonly record struct LineCut(int Lines, bool Overlong, bool EndsOnLine, bool TailOverlong = false);

    private static LineCut Lines(byte[] blob)
    {
        var lines = 0;
        var overlong = false;
        var start = 0;
        for (var lf = Array.IndexOf(blob, (byte)'\n'); lf >= 0; lf = Array.IndexOf(blob, (byte)'\n', start))
        {
            var length = lf - start - (lf > start && blob[lf - 1] == '\r' ? 1 : 0);
            overlong |= length > MaxFtpLine;
            lines++;
            start = lf + 1;
        }

        // A tail without a line end is read as over-long once it passes the limit plus room for CRLF.
        var tailOverlong = blob.Length - start > MaxFtpLine + 2;
        return new(lines, overlong || tailOverlong, start == blob.Length, tailOverlong);
    }

    /// <summary>How many whole frames <paramref name="reply"/> holds so far (cheap enough to poll).</summary>
    private static int CountFrames(byte[] reply)
    {
        var (at, frames) = (0, 0);
        while (reply.Length - at >= 4 && reply.Length - at - 4 >= BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(at)))
        {
            at += 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(at));
            frames++;
        }

        return frames;
    }

    /// <summary>The reply frames in <paramref name="reply"/>, each parsed as JSON; no byte may be left over.</summary>
    private static List<JsonElement> ReplyFrames(byte[] reply, string context)
    {
        var frames = new List<JsonElement>();
        var at = 0;
        while (reply.Length - at >= 4)
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(at));
            Assert.True(length <= MaxFrameBytes, $"{context}: a reply announcing {length} bytes");
            if (reply.Length - at - 4 < length)
            {
                break;
            }

            frames.Add(JsonDocument.Parse(reply.AsMemory(at + 4, (int)length)).RootElement.Clone());
            at += 4 + (int)length;
        }

        Assert.True(at == reply.Length, $"{context}: a torn reply after {frames.Count} frames ({reply.Length - at} bytes left)");
        return frames;
    }

    private static string Code(JsonElement reply, string context)
    {
        Assert.True(reply.ValueKind == JsonValueKind.Object && reply.TryGetProperty("out", out var word) && word.GetString() == "error"
            && reply.TryGetProperty("result", out var result) && result.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String
            && result.TryGetProperty("message", out var message) && message.GetString() is { Length: > 0 },
            $"{context}: not an error reply: {reply}");
        return reply.GetProperty("result").GetProperty("code").GetString()!;
    }

    private static void AssertErrors(IEnumerable<JsonElement> replies, (string Code, string? Id)[]? expected, string context)
    {
        var index = 0;
        foreach (var reply in replies)
        {
            var code = Code(reply, context);
            if (expected is null)
            {
                Assert.True(RecoverableRpcCodes.Contains(code), $"{context}: reply {index} has code {code}");
            }
            else
            {
                var id = reply.TryGetProperty("id", out var value) ? value.GetRawText() : null;
                Assert.True((code, id) == expected[index], $"{context}: reply {index} is ({code}, id {id ?? "none"}), want ({expected[index].Code}, id {expected[index].Id ?? "none"})");
            }

            index++;
        }
    }

    private static string Describe(List<JsonElement> replies) =>
        string.Join(", ", replies.Take(5).Select(r => r.ToString())) + (replies.Count > 5 ? ", ..." : "");

    /// <summary>The codes of the complete FTP replies in <paramref name="reply"/>; every line must be a reply line.</summary>
    private static List<int> FtpReplyCodes(byte[] reply, string context, bool complete = true)
    {
        var text = Encoding.UTF8.GetString(reply);
        var lines = text.Split("\r\n");
        Assert.True(!complete || lines[^1].Length == 0, $"{context}: a torn reply line: {lines[^1]}");
        var codes = new List<int>();
        foreach (var line in lines[..^1])
        {
            Assert.True(FtpReplyLine().IsMatch(line), $"{context}: not an FTP reply line: {line}");
            if (line.Length >= 4 && line[3] == ' ' && char.IsAsciiDigit(line[0]))
            {
                codes.Add(int.Parse(line.AsSpan(0, 3), CultureInfo.InvariantCulture));
            }
        }

        return codes;
    }

    private static string Tail(byte[] reply) =>
        Encoding.Latin1.GetString(reply.AsSpan(Math.Max(0, reply.Length - 300)));

    private static int SeedFor(string name) =>
        int.TryParse(Environment.GetEnvironmentVariable("GARBAGE_SEED"), NumberStyles.Integer, CultureInfo.InvariantCulture, out var seed)
            ? seed
            : name.Aggregate(17, (h, c) => (h * 31) + c);

    private static byte[] RandomBytes(Random random, int min, int max)
    {
        var bytes = new byte[random.Next(min, max)];
        random.NextBytes(bytes);
        return bytes;
    }

    private static string RandomPrintable(Random random) =>
        new([.. Enumerable.Range(0, random.Next(1, 80)).Select(_ => (char)random.Next(32, 127))]);

    /// <summary>Random bytes but LF, then CRLF: one line, within the limit.</summary>
    private static byte[] RandomLine(Random random)
    {
        var line = RandomBytes(random, 1, 200);
        line.AsSpan().Replace((byte)'\n', (byte)'x');
        return [.. line, 13, 10];
    }

    private static byte[] LittleEndian(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, value);
        return bytes;
    }

    private static byte[] Frame(byte[] body) => [.. LittleEndian(body.Length), .. body];

    private const string ProtocolErrorsMetric = "gateway_protocol_errors_total";

    private static long ProtocolErrors(string metrics, string protocol) =>
        (long)AdminApi.SumOf(metrics, ProtocolErrorsMetric, $"protocol=\"{protocol}\"");

    private static string ErrorLines(string metrics, string protocol) =>
        string.Join("; ", AdminApi.Series(metrics, ProtocolErrorsMetric, $"protocol=\"{protocol}\""));

    [GeneratedRegex("""^(\d{3}[ -]| ).*$""")]
    private static partial Regex FtpReplyLine();

    [GeneratedRegex("""^HTTP/1\.1 (4\d\d|505) """)]
    private static partial Regex HttpRefusal();

    /// <summary>
    /// A client socket whose replies are read all the time into a buffer (so a big echo never stalls on an unread
    /// socket), with waits that end at a deadline. <see cref="End"/> says how the server ended it.
    /// </summary>
    private sealed class RawConnection : IDisposable
    {
        private readonly Socket _socket;
        private readonly MemoryStream _received = new();
        private readonly Task _reading;

        private RawConnection(Socket socket, CancellationToken cancellationToken)
        {
            _socket = socket;
            _reading = ReadAsync(cancellationToken);
        }

        /// <summary>How many FTP replies the test has taken from this connection so far.</summary>
        public int RepliesTaken { get; set; }

        /// <summary>Null while open; Success for an end of stream, else the error that ended it (a reset).</summary>
        public SocketError? End { get; private set; }

        public byte[] Received
        {
            get
            {
                lock (_received)
                {
                    return _received.ToArray();
                }
            }
        }

        public static async Task<RawConnection> OpenAsync(IPEndPoint endpoint, CancellationToken cancellationToken) =>
            new(await TcpClients.ConnectAsync(endpoint, cancellationToken: cancellationToken), cancellationToken);

        /// <summary>Sends all of <paramref name="bytes"/>; false if the server closed (or reset) the connection first.</summary>
        public async Task<bool> SendAsync(byte[] bytes)
        {
            try
            {
                for (var offset = 0; offset < bytes.Length; offset += 65536)
                {
                    using var patience = new CancellationTokenSource(Patience);
                    await _socket.SendAsync(bytes.AsMemory(offset, Math.Min(65536, bytes.Length - offset)), SocketFlags.None, patience.Token);
                }

                return true;
            }
            catch (SocketException)
            {
                return false;
            }
        }

        public void EndSending()
        {
            try
            {
                _socket.Shutdown(SocketShutdown.Send);
            }
            catch (SocketException)
            {
                // Already reset by the server: End says so.
            }
        }

        /// <summary>Waits until <paramref name="done"/> holds for the bytes received, or the server closes, or the patience runs out.</summary>
        public async Task<bool> WaitForAsync(Func<byte[], bool> done, TimeSpan patience)
        {
            var deadline = DateTime.UtcNow + patience;
            while (true)
            {
                var closed = _reading.IsCompleted; // closed by the server, or the test's budget ran out
                if (done(Received))
                {
                    return true;
                }

                if (closed || DateTime.UtcNow > deadline)
                {
                    return false;
                }

                await Task.Delay(20);
            }
        }

        public async Task<bool> WaitForCloseAsync(TimeSpan patience)
        {
            await Task.WhenAny(_reading, Task.Delay(patience));
            return End is not null;
        }

        public void Dispose() => _socket.Dispose();

        private async Task ReadAsync(CancellationToken cancellationToken)
        {
            var buffer = new byte[65536];
            try
            {
                int n;
                while ((n = await _socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken)) > 0)
                {
                    lock (_received)
                    {
                        _received.Write(buffer, 0, n);
                    }
                }

                End = SocketError.Success;
            }
            catch (SocketException e)
            {
                End = e.SocketErrorCode;
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException)
            {
                // The test's budget ran out or the test is done with the socket.
            }
        }
    }

    private sealed class TemporaryDirectory(string prefix) : IDisposable
    {
        public string Path { get; } = Directory.CreateTempSubdirectory(prefix).FullName;

        public void Dispose() => Directory.Delete(Path, recursive: true);
    }
}
