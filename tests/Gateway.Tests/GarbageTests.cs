using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Gateway.Tests;

/// <summary>
/// Random and malformed bytes on every port of every model that holds many connections: no process crashes,
/// the clients connected before the garbage are still served, each protocol answers with its own error or
/// closes cleanly, and the errors are counted. The blobs come from a seeded generator; a failure names the seed
/// and the blob so it can be replayed.
/// </summary>
public sealed partial class GarbageTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    public static TheoryData<string> Models => Tests.Models.Concurrent;

    [Theory]
    [MemberData(nameof(Models))]
    public async Task GarbageOnEveryPortHarmsNoOneAndEachProtocolAnswersWithItsError(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, .. Tests.Models.Args(model, "Echo", "Rpc", "Ftp")]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var seed = model.Aggregate(17, (h, c) => (h * 31) + c);
        var random = new Random(seed);

        // The well-behaved clients, connected before any garbage.
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: timeout.Token);
        Assert.Equal("before", await EchoAsync(echo, "before", timeout.Token));
        using var ftp = await TcpClients.ConnectAsync(gateway.Endpoint("ftp"), cancellationToken: timeout.Token);
        using var ftpLines = new StreamReader(new NetworkStream(ftp, ownsSocket: false), Encoding.ASCII);
        Assert.StartsWith("220 ", await ftpLines.ReadLineAsync(timeout.Token), StringComparison.Ordinal);

        var rpcBlobs = new List<(string Name, byte[] Bytes)>
        {
            ("random bytes", RandomBytes(random, 1, 65536)),
            ("a header announcing 4 GiB", [0xF0, 0xFF, 0xFF, 0xFF, 1, 2, 3]),
            ("a frame of invalid JSON", Frame("{\"in\":\"ping\",\"params\":[1,2"u8.ToArray())),
            ("a frame of random bytes", Frame(RandomBytes(random, 1, 4000))),
            ("an HTTP request", "GET / HTTP/1.1\r\nHost: gateway\r\n\r\n"u8.ToArray()),
            ("NUL bytes", new byte[10_000]),
            ("frames of JSON that is no request", [.. Frame("[]"u8.ToArray()), .. Frame("{\"in\":7}"u8.ToArray()), .. Frame("\"in\""u8.ToArray()), .. Frame([])]),
        };
        var ftpBlobs = new List<(string Name, byte[] Bytes)>
        {
            ("random bytes", RandomBytes(random, 1, 65536)),
            ("a 100 KiB line", Encoding.ASCII.GetBytes(new string('A', 100 * 1024) + "\r\n")),
            ("telnet commands", [0xFF, 0xF4, 0xFF, 0xF2, 0xFF, 0xFB, 0x01, 0xFF, 0xFF, .. "ABOR\r\n"u8.ToArray(), 0xFF]),
            ("NUL-filled lines", [.. new byte[300], 13, 10, .. new byte[5], 13, 10]),
            ("random printable lines", Encoding.ASCII.GetBytes(string.Join("\r\n", Enumerable.Range(0, 20).Select(_ => new string([.. Enumerable.Range(0, random.Next(1, 80)).Select(_ => (char)random.Next(32, 127))]))) + "\r\n")),
            ("invalid UTF-8 arguments", [.. "CWD "u8.ToArray(), 0xC3, 0x28, 0xA0, 0xA1, 13, 10, .. "MKD "u8.ToArray(), 0xF8, 0x88, 13, 10]),
        };
        var echoBlobs = Enumerable.Range(0, 6).Select(_ => RandomBytes(random, 1, 256 * 1024)).ToList();
        var adminBlob = RandomBytes(random, 1, 8192);

        // All of it at once.
        var rpcRuns = rpcBlobs.Select(b => SendAndCollectAsync(gateway.Rpc, b.Bytes, timeout.Token)).ToList();
        var ftpRuns = ftpBlobs.Select(b => SendAndCollectAsync(gateway.Endpoint("ftp"), b.Bytes, timeout.Token)).ToList();
        var echoRuns = echoBlobs.Select(b => SendAndCollectAsync(gateway.Echo, b, timeout.Token)).ToList();
        var adminRun = SendAndCollectAsync(new IPEndPoint(IPAddress.Loopback, gateway.Admin.Port), adminBlob, timeout.Token);

        for (var i = 0; i < rpcBlobs.Count; i++)
        {
            var (closed, reply) = await rpcRuns[i];
            var context = $"RPC, {rpcBlobs[i].Name}, seed {seed}";
            Assert.True(closed, $"{context}: the connection was not closed");
            foreach (var frame in ReplyFrames(reply, context))
            {
                using var document = JsonDocument.Parse(frame);
                Assert.Equal("error", document.RootElement.GetProperty("out").GetString());
                Assert.False(string.IsNullOrEmpty(document.RootElement.GetProperty("result").GetProperty("code").GetString()), context);
            }
        }

        for (var i = 0; i < ftpBlobs.Count; i++)
        {
            var (closed, reply) = await ftpRuns[i];
            var context = $"FTP, {ftpBlobs[i].Name}, seed {seed}";
            Assert.True(closed, $"{context}: the connection was not closed");
            var lines = Encoding.ASCII.GetString(reply).Split("\r\n");
            Assert.Equal("", lines[^1]); // every reply line complete
            Assert.StartsWith("220 ", lines[0], StringComparison.Ordinal);
            Assert.All(lines[1..^1], line => Assert.Matches(FtpReplyLine(), line));
            Assert.Contains(lines[1..^1], line => line[0] is '4' or '5');
        }

        for (var i = 0; i < echoBlobs.Count; i++)
        {
            var (closed, reply) = await echoRuns[i];
            Assert.True(closed, $"echo blob {i}, seed {seed}: not closed");
            Assert.True(echoBlobs[i].AsSpan().SequenceEqual(reply), $"echo blob {i} of {echoBlobs[i].Length} bytes, seed {seed}: {reply.Length} bytes came back, not the same");
        }

        var (adminClosed, adminReply) = await adminRun;
        Assert.True(adminClosed, $"admin, seed {seed}: not closed");
        Assert.True(adminReply.Length == 0 || Encoding.ASCII.GetString(adminReply).StartsWith("HTTP/1.1 400", StringComparison.Ordinal),
            $"admin, seed {seed}: {Encoding.ASCII.GetString(adminReply.AsSpan(0, Math.Min(100, adminReply.Length)))}");

        // Nobody else was harmed: the process runs, the earlier clients are served, new ones too.
        Assert.False(gateway.HasExited, gateway.Output);
        Assert.Equal("after", (await rpc.Client.CallAsync("ping", "after", cancellationToken: timeout.Token)).Result.GetString());
        Assert.Equal("after", await EchoAsync(echo, "after", timeout.Token));
        await ftp.SendAsync("NOOP\r\n"u8.ToArray(), SocketFlags.None, timeout.Token);
        Assert.StartsWith("200 ", await ftpLines.ReadLineAsync(timeout.Token), StringComparison.Ordinal);
        await using var fresh = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await fresh.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);

        using var admin = new AdminApi(gateway);
        Assert.Equal(HttpStatusCode.OK, (await admin.Http.GetAsync(new Uri("/healthz", UriKind.Relative), timeout.Token)).StatusCode);
        // Counted (two RPC blobs may end in a torn frame, which is no error); a prefork worker's counts reach the
        // supervisor with its next heartbeat, so wait a few seconds for them.
        var metrics = "";
        var counted = false;
        for (var attempt = 0; attempt < 60 && !counted; attempt++)
        {
            await Task.Delay(attempt == 0 ? 0 : 250, timeout.Token);
            metrics = await admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative), timeout.Token);
            counted = ProtocolErrors(metrics, "rpc") >= rpcBlobs.Count - 2 && ProtocolErrors(metrics, "ftp") >= ftpBlobs.Count;
        }

        Assert.True(counted, metrics);
    }

    private static byte[] RandomBytes(Random random, int min, int max)
    {
        var bytes = new byte[random.Next(min, max)];
        random.NextBytes(bytes);
        return bytes;
    }

    private static byte[] Frame(byte[] body)
    {
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }

    private static async Task<string> EchoAsync(Socket socket, string text, CancellationToken cancellationToken)
    {
        await socket.SendAsync(Encoding.ASCII.GetBytes(text), SocketFlags.None, cancellationToken);
        var buffer = new byte[text.Length];
        for (var got = 0; got < buffer.Length;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, cancellationToken);
            Assert.NotEqual(0, n);
            got += n;
        }

        return Encoding.ASCII.GetString(buffer);
    }

    /// <summary>
    /// Sends <paramref name="blob"/> while reading, then ends the sending side and reads until the server closes.
    /// Closed: the server ended the connection within the patience (a reset counts: it is a close).
    /// </summary>
    private static async Task<(bool Closed, byte[] Reply)> SendAndCollectAsync(IPEndPoint endpoint, byte[] blob, CancellationToken cancellationToken)
    {
        using var socket = await TcpClients.ConnectAsync(endpoint, cancellationToken: cancellationToken);
        using var patience = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        patience.CancelAfter(Patience);
        var received = new MemoryStream();
        var reading = Task.Run(async () =>
        {
            var buffer = new byte[65536];
            try
            {
                int n;
                while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, patience.Token)) > 0)
                {
                    received.Write(buffer, 0, n);
                }

                return true;
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.ConnectionAborted)
            {
                return true;
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }, cancellationToken);
        try
        {
            await socket.SendAsync(blob, SocketFlags.None, patience.Token);
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (SocketException)
        {
            // The server closed first (a limit hit mid-blob): what it said before is still read.
        }

        var closed = await reading;
        return (closed, received.ToArray());
    }

    /// <summary>The reply's frames; every byte must belong to a complete one.</summary>
    private static List<byte[]> ReplyFrames(byte[] reply, string context)
    {
        var frames = new List<byte[]>();
        var at = 0;
        while (at < reply.Length)
        {
            Assert.True(reply.Length - at >= 4, $"{context}: a torn reply header");
            var length = (int)BinaryPrimitives.ReadUInt32LittleEndian(reply.AsSpan(at));
            Assert.True(reply.Length - at - 4 >= length, $"{context}: a torn reply");
            frames.Add(reply[(at + 4)..(at + 4 + length)]);
            at += 4 + length;
        }

        return frames;
    }

    private static long ProtocolErrors(string metrics, string protocol) =>
        ErrorLine().Matches(metrics).Where(m => m.Groups["protocol"].Value == protocol).Sum(m => long.Parse(m.Groups["count"].Value, System.Globalization.CultureInfo.InvariantCulture));

    [GeneratedRegex("""^(\d{3}[ -]| ).*$""")]
    private static partial Regex FtpReplyLine();

    [GeneratedRegex("""gateway_protocol_errors_total\{[^}]*protocol="(?<protocol>[a-z]+)"[^}]*\} (?<count>\d+)""")]
    private static partial Regex ErrorLine();
}
