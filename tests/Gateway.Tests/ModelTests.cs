using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Gateway.Tests;

/// <summary>What the in-process models must each get right beyond the shared protocol suite.</summary>
[Collection(ModelGateways.Name)]
public sealed class ModelTests(ModelGatewaysFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    [Theory]
    [MemberData(nameof(Models.InProcess), MemberType = typeof(Models))]
    public async Task InputPausedBehindASlowHandlerIsReadToTheLastByteAfterItResumes(string model)
    {
        // The handler sleeps first while the client keeps writing small pipelined frames in small pieces: the
        // input pipe fills and the transport stops reading; after the sleep it must read everything that
        // piled up in the kernel — for edge-triggered epoll no new edge comes for those bytes.
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        const int Frames = 100_000;
        var requests = new MemoryStream();
        void Frame(string json)
        {
            var body = Encoding.UTF8.GetBytes(json);
            Span<byte> header = stackalloc byte[4];
            BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)body.Length);
            requests.Write(header);
            requests.Write(body);
        }

        Frame("{\"in\":\"sleep\",\"params\":{\"ms\":1500}}");
        for (var i = 0; i < Frames; i++)
        {
            Frame($"{{\"in\":\"echo\",\"params\":\"{i:D8}-{new string('p', 100)}\"}}");
        }

        var bytes = requests.ToArray();
        var sending = Task.Run(async () =>
        {
            for (var offset = 0; offset < bytes.Length; offset += 1000) // many small writes
            {
                await connection.Socket.SendAsync(bytes.AsMemory(offset, Math.Min(1000, bytes.Length - offset)), SocketFlags.None, timeout.Token);
            }
        });

        Assert.Equal("sleep", (await connection.Client.ReceiveAsync(timeout.Token))?.Out);
        for (var i = 0; i < Frames; i++)
        {
            var reply = await connection.Client.ReceiveAsync(timeout.Token);
            Assert.Equal($"{i:D8}-{new string('p', 100)}", reply?.Result.GetString());
        }

        await sending;
        Assert.True(bytes.Length > 12 * 1024 * 1024, "more than the pipe and the kernel buffers hold");
    }

    [Fact]
    public async Task SelectPastFdSetSizeRefusesCleanlyServesTheFirstAndRecovers()
    {
        var gateway = await fixture.For("select");
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var rejectedBefore = RpcListener(await admin.GetJsonAsync("/admin/listeners")).GetProperty("rejected").GetInt64();
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < 1100; i++)
            {
                sockets.Add(await TcpClients.ConnectAsync(gateway.Rpc, cancellationToken: timeout.Token));
            }

            // Every client asks once: the ones the gateway could watch answer, the others find their connection closed.
            var answered = await Task.WhenAll(sockets.Select(s => PingAsync(s, timeout.Token)));
            var served = answered.Count(a => a);
            var refused = answered.Length - served;
            Assert.InRange(served, 500, 1023);
            Assert.True(refused >= 77, $"{refused} refused: 1100 clients cannot all fit below descriptor 1024");
            Assert.True(answered.Take(500).All(a => a), "the first clients are served");
            var listener = await admin.WaitForAsync("/admin/listeners", json => RpcListener(json).GetProperty("rejected").GetInt64() - rejectedBefore >= refused);
            Assert.Equal(refused, RpcListener(listener).GetProperty("rejected").GetInt64() - rejectedBefore);
            Assert.Contains("FD_SETSIZE", gateway.Output, StringComparison.Ordinal);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        // The crowd left: new clients are served again.
        await admin.WaitForAsync("/admin/listeners", json => RpcListener(json).GetProperty("active").GetInt32() == 0);
        for (var i = 0; i < 20; i++)
        {
            await using var again = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
            Assert.Equal("pong", (await again.Client.CallAsync("ping", i, cancellationToken: timeout.Token)).Out);
        }

        Assert.False(gateway.HasExited);
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task AdminListsTheConnectionWithItsModelAndClosesIt(string model)
    {
        // The registry, the model tag and DELETE (graceful close request, then abort) work on every model:
        // an RPC client is told to go (EOF) without having to send anything. A pool's connection is listed by
        // the supervisor and closed by the worker that owns it.
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
        var remote = rpc.Socket.LocalEndPoint!.ToString();
        var item = (await admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Num("total") == 1)).Items().Single();
        var pooled = Models.Pools.Contains(model);
        Assert.Equal(("rpc", pooled ? "prefork" : model, gateway.Rpc.Port), (item.Str("protocol"), item.Str("model"), item.GetProperty("listener").GetInt32()));
        Assert.Equal(gateway.Rpc.ToString(), item.Str("local"));
        if (pooled)
        {
            // Named for the worker that serves it, which is the one whoami names.
            var whoami = (await rpc.Client.CallAsync("whoami", cancellationToken: timeout.Token)).Result;
            Assert.Equal(whoami.GetProperty("worker").GetInt32(), item.GetProperty("worker").GetInt32());
            Assert.StartsWith($"w{whoami.GetProperty("worker").GetInt32()}-", item.Str("id"), StringComparison.Ordinal);
            Assert.Equal(item.Str("id"), (await admin.GetJsonAsync($"/admin/connections/{item.Str("id")}")).Str("id"));
        }
        else
        {
            // The metrics carry the model too (cumulative in this shared gateway: at least this one connection).
            // A pool's workers count in their own processes; their metrics do not reach /metrics yet.
            var metrics = await admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative), timeout.Token);
            Assert.Matches($"gateway_connections_accepted_total\\{{[^}}]*model=\"{model}\"[^}}]*protocol=\"rpc\"[^}}]*\\}} [1-9]", metrics);
        }

        Assert.Equal(202, (await admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{item.Str("id")}")).Status);
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(rpc.Socket, Patience));
        await admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Num("total") == 0);
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task AdminCountsTheBytesTheModelCarried(string model)
    {
        // The in-process models count at the socket (no counting wrapper around their pipes); Kestrel's
        // connections through the wrapper. Both give the listing the same figures.
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo);
        var sent = new byte[70_000];
        Random.Shared.NextBytes(sent);
        await echo.SendAsync(sent, SocketFlags.None, timeout.Token);
        var back = new byte[sent.Length];
        for (var got = 0; got < back.Length;)
        {
            var n = await echo.ReceiveAsync(back.AsMemory(got), SocketFlags.None, timeout.Token);
            Assert.True(n > 0, "the echo connection closed early");
            got += n;
        }

        Assert.Equal(sent, back);
        var remote = echo.LocalEndPoint!.ToString();
        var page = await admin.WaitForAsync($"/admin/connections?remote={remote}",
            p => p.Items().Any(i => i.Num("bytesOut") == sent.Length));
        var item = Assert.Single(page.Items());
        Assert.Equal((sent.Length, sent.Length), (item.Num("bytesIn"), item.Num("bytesOut")));
    }

    [Fact]
    public async Task IterativeServesTheNextClientOnlyOnceTheFirstHasLeft()
    {
        var gateway = await fixture.For("iterative");
        using var timeout = new CancellationTokenSource(Patience);
        var first = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        try
        {
            Assert.Equal("pong", (await first.Client.CallAsync("ping", "first", cancellationToken: timeout.Token)).Out);
            await using var second = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token); // the kernel's backlog takes it
            var waiting = second.Client.CallAsync("ping", "second", cancellationToken: timeout.Token);
            await Task.Delay(500, timeout.Token);
            Assert.False(waiting.IsCompleted, "the loop server answered a second client while the first was still connected");
            Assert.Equal("pong", (await first.Client.CallAsync("ping", "first again", cancellationToken: timeout.Token)).Out);

            await first.DisposeAsync(); // the first leaves: the second is accepted and answered
            Assert.Equal(("pong", "second"), ((await waiting).Out, (await waiting).Result.GetString()));
        }
        finally
        {
            await first.DisposeAsync();
        }
    }

    [Theory]
    [MemberData(nameof(Models.InProcess), MemberType = typeof(Models))]
    public async Task HundredOpenCloseCyclesLeakNoDescriptorOrThreadAndSigtermStopsIt(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, $"--Gateway:Listeners:Rpc:Model={model}", $"--Gateway:Listeners:Echo:Model={model}"]);
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        async Task CyclesAsync(int count)
        {
            for (var i = 0; i < count; i++)
            {
                await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
                Assert.Equal("pong", (await connection.Client.CallAsync("ping", i, cancellationToken: timeout.Token)).Out);
            }

            await admin.WaitForAsync("/admin/listeners", json => RpcListener(json).GetProperty("active").GetInt32() == 0);
        }

        await CyclesAsync(10); // warm up: lazily opened runtime files and pool threads are not leaks
        var before = OpenDescriptors(gateway.Pid);
        var threadsBefore = Threads(gateway.Pid);
        await CyclesAsync(100);
        // A connection leaves the registry when its handler returns; its socket and threads end just after.
        var after = OpenDescriptors(gateway.Pid);
        var threadsAfter = Threads(gateway.Pid);
        for (var wait = 0; wait < 100 && (after > before + 2 || threadsAfter > threadsBefore + 8); wait++)
        {
            await Task.Delay(50, timeout.Token);
            (after, threadsAfter) = (OpenDescriptors(gateway.Pid), Threads(gateway.Pid));
        }

        Assert.True(after <= before + 2, $"{before} descriptors before 100 connections, {after} after: {DescribeDescriptors(gateway.Pid)}");
        // The thread pool may add a few workers; a model that leaked a thread per connection would add 100 or 200.
        Assert.True(threadsAfter <= threadsBefore + 8, $"{threadsBefore} threads before 100 connections, {threadsAfter} after");

        // Idle connections open: SIGTERM still stops the model's threads and the process, cleanly.
        var idle = new List<RpcConnection>();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                idle.Add(await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token));
            }

            // The loop server has taken one of them; the others wait in the backlog, and are dropped with it.
            var served = model == "iterative" ? 1 : 5;
            await admin.WaitForAsync("/admin/listeners", json => RpcListener(json).GetProperty("active").GetInt32() == served);
            gateway.Terminate();
            Assert.Equal(0, await gateway.WaitForExitAsync(TimeSpan.FromSeconds(45)));
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(idle);
        }
    }

    private static System.Text.Json.JsonElement RpcListener(System.Text.Json.JsonElement listeners) =>
        listeners.EnumerateArray().Single(l => l.GetProperty("protocol").GetString() == "rpc");

    private static int OpenDescriptors(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    private static int Threads(int pid) => Directory.GetDirectories($"/proc/{pid}/task").Length;

    /// <summary>What the descriptors are, by kind (socket, pipe, anon_inode, file), for a failure message.</summary>
    private static string DescribeDescriptors(int pid) => string.Join(", ", Directory.GetFiles($"/proc/{pid}/fd")
        .Select(fd => new FileInfo(fd).LinkTarget ?? "?")
        .Select(target => target.StartsWith('/') ? "file" : target.Split(':')[0])
        .GroupBy(kind => kind)
        .Select(g => $"{g.Count()} {g.Key}"));

    /// <summary>One ping on a raw socket: true when answered, false when the gateway closed the connection.</summary>
    private static async Task<bool> PingAsync(Socket socket, CancellationToken cancellationToken)
    {
        var body = Encoding.UTF8.GetBytes(new JsonObject { ["in"] = "ping" }.ToJsonString());
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        try
        {
            await socket.SendAsync(frame, SocketFlags.None, cancellationToken);
            var header = new byte[4];
            var got = 0;
            while (got < 4)
            {
                var n = await socket.ReceiveAsync(header.AsMemory(got), SocketFlags.None, cancellationToken);
                if (n == 0)
                {
                    return false;
                }

                got += n;
            }

            return BinaryPrimitives.ReadUInt32LittleEndian(header) > 0;
        }
        catch (SocketException)
        {
            return false; // reset: closed by the gateway
        }
    }
}
