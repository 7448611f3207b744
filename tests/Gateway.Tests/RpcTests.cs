using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Protocols.Rpc;

namespace Gateway.Tests;

[Collection(ModelGateways.Name)]
public sealed class RpcTests(ModelGatewaysFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task PipeliningClientThatNeverReadsIsHeldBackAndEveryRequestIsAnswered(string model)
    {
        var gateway = await fixture.For(model);
        await using var client = await RpcConnection.OpenAsync(gateway.Rpc);
        var socket = client.Socket;
        // 3855 ping frames of 17 bytes: 65,535 bytes that repeat, so a partial send resumes mid-pattern.
        var frame = new byte[17];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, 13);
        "{\"in\":\"ping\"}"u8.CopyTo(frame.AsSpan(4));
        var chunk = Enumerable.Repeat(frame, 3855).SelectMany(f => f).ToArray();
        // Requests without reading a reply until the gateway holds us back: its output pipe fills, the handler
        // stops reading, the input pipe fills, the transport stops reading the socket.
        var sent = await TcpClients.SendUntilHeldBackAsync(socket, at => new ArraySegment<byte>(chunk, (int)(at % chunk.Length), chunk.Length - (int)(at % chunk.Length)), Patience);
        Assert.InRange(sent, 1, 64L * 1024 * 1024);
        socket.Shutdown(SocketShutdown.Send); // a torn last frame is simply not answered
        using var timeout = new CancellationTokenSource(Patience);
        long answered = 0;
        while (await client.Client.ReceiveAsync(timeout.Token) is { } reply)
        {
            Assert.Equal("pong", reply.Out);
            answered++;
        }

        Assert.Equal(sent / frame.Length, answered);
    }

    [Theory]
    [MemberData(nameof(Models.Concurrent), MemberType = typeof(Models))]
    public async Task ThousandConcurrentClientsEachGetTheirOwnPong(string model)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        // select(2) watches descriptors below 1024 only, and the process holds ~250 of its own: 500 clients
        // there (ModelTests covers what happens past the limit).
        var connections = new RpcConnection[model == "select" ? 500 : 1000];
        using var connecting = new SemaphoreSlim(64);
        try
        {
            // All thousand are open at once before any of them asks anything.
            await Task.WhenAll(Enumerable.Range(0, connections.Length).Select(async i =>
            {
                await connecting.WaitAsync(timeout.Token);
                try
                {
                    connections[i] = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
                }
                finally
                {
                    connecting.Release();
                }
            }));

            var replies = await Task.WhenAll(connections.Select((c, i) => c.Client.CallAsync("ping", $"client {i}", cancellationToken: timeout.Token)));
            for (var i = 0; i < replies.Length; i++)
            {
                Assert.Equal(("pong", $"client {i}"), (replies[i].Out, replies[i].Result.GetString()));
            }
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(connections);
        }
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task PipelinedRequestsWithIdsAreAnsweredInOrder(string model)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        string[] methods = ["ping", "echo", "sum", "sha256", "nope"];
        for (var i = 0; i < 200; i++)
        {
            var method = methods[i % methods.Length];
            JsonNode parameters = method switch { "sum" => new JsonArray(i, 1), _ => $"p{i}" };
            connection.Client.Send(method, parameters, $"id-{i}");
        }

        await connection.Client.FlushAsync(timeout.Token); // all 200 requests before reading any reply
        for (var i = 0; i < 200; i++)
        {
            var reply = await connection.Client.ReceiveAsync(timeout.Token);
            Assert.NotNull(reply);
            Assert.Equal($"id-{i}", reply.Id?.GetString());
            switch (methods[i % methods.Length])
            {
                case "sum":
                    Assert.Equal(i + 1, reply.Result.GetInt32());
                    break;
                case "nope":
                    Assert.Equal(RpcErrorCodes.UnknownMethod, reply.ErrorCode);
                    break;
                case "sha256":
                    Assert.Equal(64, reply.Result.GetString()?.Length);
                    break;
                default:
                    Assert.Equal($"p{i}", reply.Result.GetString());
                    break;
            }
        }
    }

    public static TheoryData<string, string, string> BadRequests()
    {
        (string Body, string Code)[] cases =
        [
            ("{\"in\":\"ping\"", RpcErrorCodes.BadJson),
            ("[\"ping\"]", RpcErrorCodes.BadRequest),
            ("{\"in\":\"launch\"}", RpcErrorCodes.UnknownMethod),
            ("{\"in\":\"sum\",\"params\":{\"a\":1}}", RpcErrorCodes.BadParams),
        ];
        var data = new TheoryData<string, string, string>();
        foreach (var model in Models.Names.Concat(Models.Pools))
        {
            foreach (var (body, code) in cases)
            {
                data.Add(model, body, code);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(BadRequests))]
    public async Task ErrorReplyKeepsTheConnectionUsable(string model, string body, string code)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        connection.Client.SendRaw(Encoding.UTF8.GetBytes(body));
        await connection.Client.FlushAsync(timeout.Token);
        var reply = await connection.Client.ReceiveAsync(timeout.Token);
        Assert.Equal(("error", code), (reply?.Out, reply?.ErrorCode));
        Assert.Equal("pong", (await connection.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task FrameOverMaxFrameBytesGetsTooLargeAndTheConnectionCloses(string model)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var header = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 1024 * 1024 + 1); // the default limit is 1 MiB
        await connection.Socket.SendAsync(header, SocketFlags.None, timeout.Token);
        var reply = await connection.Client.ReceiveAsync(timeout.Token);
        Assert.Equal(RpcErrorCodes.TooLarge, reply?.ErrorCode);
        Assert.Null(await connection.Client.ReceiveAsync(timeout.Token));
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task FrameOfExactlyMaxFrameBytesIsAnswered(string model)
    {
        var gateway = await fixture.For(model);
        // The transport's input buffer must hold a whole largest frame, or this one could never complete.
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var padding = new string('x', 1024 * 1024 - "{\"in\":\"echo\",\"params\":\"\"}".Length);
        connection.Client.SendRaw(Encoding.UTF8.GetBytes($"{{\"in\":\"echo\",\"params\":\"{padding}\"}}"));
        await connection.Client.FlushAsync(timeout.Token);
        var reply = await connection.Client.ReceiveAsync(timeout.Token);
        Assert.Equal(padding.Length, reply?.Result.GetString()?.Length);
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task TornFramesSentByteByByteAreAnswered(string model)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var body = Encoding.UTF8.GetBytes("{\"in\":\"echo\",\"params\":\"torn\",\"id\":42}");
        var frames = new byte[2 * (4 + body.Length)];
        for (var f = 0; f < 2; f++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(frames.AsSpan(f * (4 + body.Length)), (uint)body.Length);
            body.CopyTo(frames, f * (4 + body.Length) + 4);
        }

        for (var i = 0; i < frames.Length; i++)
        {
            await connection.Socket.SendAsync(frames.AsMemory(i, 1), SocketFlags.None, timeout.Token);
            if (i % 8 == 0)
            {
                await Task.Delay(1, timeout.Token); // let the pieces leave as separate segments
            }
        }

        for (var f = 0; f < 2; f++)
        {
            var reply = await connection.Client.ReceiveAsync(timeout.Token);
            Assert.Equal(("echo", "torn", 42), (reply?.Out, reply?.Result.GetString(), reply?.Id?.GetInt32()));
        }
    }

    [Theory]
    [MemberData(nameof(Models.InProcess), MemberType = typeof(Models))]
    public async Task WhoAmIReportsTheGatewayPidAndItsModel(string model)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var reply = await connection.Client.CallAsync("whoami", cancellationToken: timeout.Token);
        Assert.Equal(gateway.Pid, reply.Result.GetProperty("pid").GetInt32());
        Assert.Equal(model, reply.Result.GetProperty("model").GetString());
        Assert.Equal(System.Text.Json.JsonValueKind.Null, reply.Result.GetProperty("worker").ValueKind);
        Assert.False(string.IsNullOrEmpty(reply.Result.GetProperty("connection").GetString()));
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task PythonSeedClientPingsTenTimesOnOneConnection(string model)
    {
        var gateway = await fixture.For(model);
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "rpc_seed_client.py");
        var start = new ProcessStartInfo("python3");
        start.ArgumentList.Add(script);
        start.ArgumentList.Add(gateway.Rpc.Address.ToString());
        start.ArgumentList.Add(gateway.Rpc.Port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        start.ArgumentList.Add("10");
        var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(start);

        Assert.True(exitCode == 0, $"python3 exited {exitCode}: {stderr}");
        var expected = Enumerable.Range(0, 10).Select(i => $"pong ireader {i}");
        Assert.Equal(expected, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
