using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Gateway.Protocols.Framing;
using Xunit.Abstractions;

namespace Gateway.Tests;

/// <summary>
/// Clients that ask for long CPU-bound work and leave: the serving processes must stop computing for them
/// (a security review measured 38 s of server CPU after four <c>work(10000000)</c> requests whose clients had
/// closed at once). Measured as the real processes' CPU time, from /proc, on every model.
/// </summary>
public sealed class AbandonedWorkTests(ITestOutputHelper output)
{
    private const int Clients = 4;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Below this much CPU in <see cref="Window"/>, after <see cref="Grace"/>, the work has stopped: an idle gateway
    /// uses a few hundredths of a second, and the unstopped work two seconds of CPU per second on two cores.
    /// </summary>
    private const double StoppedCpuSeconds = 1.0;

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    [InlineData("epoll-et")]
    [InlineData("poll")]
    [InlineData("select")]
    [InlineData("threads")]
    [InlineData("iterative")]
    [InlineData("prefork")]
    [InlineData("prefork-sync")]
    public async Task WorkForClientsThatClosedStopsCostingCpuAndIsCountedAsAbandoned(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, .. Models.Args(model, "Rpc")]);
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var pids = await ServingPidsAsync(gateway, admin, model);
        var idle = ProcessCpu.Seconds(pids);

        var sockets = new List<Socket>();
        try
        {
            var frame = new ArrayBufferWriter<byte>();
            LengthPrefixedFrameWriter.WriteFrame(Encoding.UTF8.GetBytes("""{"in":"work","params":10000000}"""), frame);
            for (var i = 0; i < Clients; i++)
            {
                sockets.Add(await TcpClients.ConnectAsync(gateway.Rpc, cancellationToken: timeout.Token));
                await sockets[^1].SendAsync(frame.WrittenMemory, SocketFlags.None, timeout.Token);
            }

            // Closed while the work runs (not before it starts), so what is proven is that it stops midway.
            await ProcessCpu.WaitForAsync(pids, idle, 0.5, "the work never started", timeout.Token);
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }

        await Task.Delay(Grace, timeout.Token);
        var atStart = ProcessCpu.Seconds(pids);
        await Task.Delay(Window, timeout.Token);
        var burned = ProcessCpu.Seconds(pids) - atStart;
        output.WriteLine($"{model}: {atStart - idle:F2} CPU-s until the grace ended, {burned:F2} CPU-s in the {Window.TotalSeconds:F0} s after it");
        Assert.True(burned < StoppedCpuSeconds,
            $"{model}: {burned:F2} CPU-s in the {Window.TotalSeconds:F0} s after the {Grace.TotalSeconds:F0} s grace, for {Clients} clients that had closed " +
            $"(processes {string.Join(", ", pids)}; {atStart - idle:F2} CPU-s before the window)");

        // Every request is counted (the pool's with its workers' next heartbeat), and the port still serves.
        await admin.MetricsAsync(text => AdminApi.SumOf(text, "gateway_requests_abandoned_total", "operation=\"work\"") >= Clients);
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    [InlineData("threads")]
    public async Task AnAdminCloseStopsAHeavyWorkAfterItsGrace(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, .. Models.Args(model, "Rpc"), "--Gateway:Admin:CloseGraceSeconds=0"]);
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var idle = ProcessCpu.Seconds([gateway.Pid]);
        await using var client = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        client.Client.Send("work", 10_000_000);
        await client.Client.FlushAsync(timeout.Token);
        await ProcessCpu.WaitForAsync([gateway.Pid], idle, 0.5, "the work never started", timeout.Token);

        var id = (await admin.GetJsonAsync("/admin/connections?protocol=rpc")).Items().Single().Str("id");
        var (status, _) = await admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}?reason=test");
        Assert.Equal(202, status);
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(client.Socket, Patience)); // closed (FIN or reset), unanswered

        await Task.Delay(Grace, timeout.Token);
        var atStart = ProcessCpu.Seconds([gateway.Pid]);
        await Task.Delay(Window, timeout.Token);
        var burned = ProcessCpu.Seconds([gateway.Pid]) - atStart;
        output.WriteLine($"{model}: {burned:F2} CPU-s in the {Window.TotalSeconds:F0} s after the admin close and the grace");
        Assert.True(burned < StoppedCpuSeconds, $"{model}: {burned:F2} CPU-s in {Window.TotalSeconds:F0} s after the admin closed the connection");
        await admin.MetricsAsync(text => AdminApi.SumOf(text, "gateway_requests_abandoned_total", "operation=\"work\"") >= 1);
    }

    /// <summary>The processes that serve the RPC listener: the gateway, and for a pool its workers too.</summary>
    private static async Task<int[]> ServingPidsAsync(GatewayProcess gateway, AdminApi admin, string model)
    {
        if (!model.StartsWith("prefork", StringComparison.Ordinal))
        {
            return [gateway.Pid];
        }

        var workers = await admin.WaitForAsync("/admin/workers",
            json => json.GetArrayLength() == 2 && json.EnumerateArray().All(w => w.Str("state") == "ready"));
        return [gateway.Pid, .. workers.EnumerateArray().Select(w => (int)w.Num("pid"))];
    }
}
