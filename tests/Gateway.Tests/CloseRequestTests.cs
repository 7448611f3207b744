using System.Diagnostics;

namespace Gateway.Tests;

/// <summary>
/// A graceful close asked of an idle connection (admin DELETE, as the drain does for all) reaches the handler
/// waiting for its next message at once: the connection closes cleanly well within the grace period, instead of
/// being aborted when the grace ends. Every transport delivers the request its own way (Kestrel's lifetime feature
/// or the reactor's wake-up of the read), so every kind is tried.
/// </summary>
public sealed class CloseRequestTests
{
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    [InlineData("epoll-et")]
    [InlineData("threads")]
    public async Task AnIdleEchoAndAnIdleRpcConnectionCloseAtOnceWhenAskedNotAfterTheGrace(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, .. Models.Args(model, "Echo", "Rpc"), $"--Gateway:Admin:CloseGraceSeconds={Grace.TotalSeconds}"]);
        using var admin = new AdminApi(gateway);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo);
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping")).Out); // then idle, waiting for the next request

        foreach (var client in new[] { echo, rpc.Socket })
        {
            var remote = client.LocalEndPoint!.ToString();
            var id = (await admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Num("total") == 1)).Items().Single().Str("id");
            var stopwatch = Stopwatch.StartNew();
            Assert.Equal(202, (await admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}")).Status);
            Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(client, Patience)); // closed, nothing sent (-1: still open)
            Assert.True(stopwatch.Elapsed < Patience, $"{model}: closed after {stopwatch.Elapsed} (grace {Grace})");
        }
    }
}
