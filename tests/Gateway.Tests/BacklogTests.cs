using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Gateway.Protocols.Framing;

namespace Gateway.Tests;

/// <summary>
/// A client that pipelines a backlog of CPU-bound requests and leaves: the gateway must notice and stop working
/// for it, instead of computing every buffered request for nobody (seen under an open-loop overload, where the
/// gateway stayed busy for minutes after the load generator had gone).
/// </summary>
public sealed class BacklogTests
{
    private const int Requests = 2000;

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    [InlineData("threads")]
    public async Task AClientThatLeavesWithABacklogOfWorkStopsCostingTheServer(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, $"--Gateway:Listeners:Rpc:Model={model}"]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        var backlog = new ArrayBufferWriter<byte>();
        var body = Encoding.UTF8.GetBytes("""{"in":"work","params":{"rounds":5000}}""");
        for (var i = 0; i < Requests; i++)
        {
            LengthPrefixedFrameWriter.WriteFrame(body, backlog);
        }

        await using (var client = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token))
        {
            await client.Socket.SendAsync(backlog.WrittenMemory, SocketFlags.None, timeout.Token);
            Assert.Equal("work", (await client.Client.ReceiveAsync(timeout.Token))?.Out);
        } // closed with replies unread: the gateway's next sends fail

        // Wait until the count of work requests stops moving; it must stop far short of the backlog.
        using var admin = new AdminApi(gateway);
        var before = -1L;
        var now = await WorkCountAsync(admin, timeout.Token);
        while (now != before)
        {
            await Task.Delay(1000, timeout.Token);
            (before, now) = (now, await WorkCountAsync(admin, timeout.Token));
        }

        Assert.True(now < Requests / 2, $"the gateway computed {now} of {Requests} requests for a client that had left");
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
    }

    private static async Task<long> WorkCountAsync(AdminApi admin, CancellationToken cancellationToken) =>
        (long)AdminApi.SumOf(await admin.MetricsAsync(cancellationToken), "gateway_request_duration_seconds_count", "operation=\"work\"");
}
