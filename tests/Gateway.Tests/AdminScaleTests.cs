using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests;

/// <summary>
/// The admin API over a registry of 10,000 live connections: every page answers right while listing requests
/// arrive together, a close finds its one connection, and the protocol traffic goes on meanwhile.
/// </summary>
public sealed class AdminScaleTests
{
    private const int Idle = 10_000;

    [Fact]
    public async Task ListingTenThousandConnectionsAnswersEveryPageAndTrafficGoesOn()
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, "--Gateway:Limits:MaxConnections=20000"]);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        using var admin = new AdminApi(gateway);
        var idle = new Socket?[Idle];
        try
        {
            await TcpClients.ConnectManyAsync(gateway.Echo, idle, 128, timeout.Token);
            await admin.WaitForAsync("/admin/connections?protocol=echo&limit=1", page => page.Num("total") == Idle, TimeSpan.FromMinutes(2));

            await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
            using var stopPinging = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
            var pings = Task.Run(async () =>
            {
                var answered = 0;
                while (!stopPinging.IsCancellationRequested)
                {
                    Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
                    answered++;
                }

                return answered;
            }, timeout.Token);

            // Twenty listings at once, sorted and paged differently: each page is the right size of the right total.
            var listings = Enumerable.Range(0, 20).Select(async i =>
            {
                var page = await admin.GetJsonAsync($"/admin/connections?protocol=echo&sort={(i % 2 == 0 ? "-" : "")}remote&offset={i * 450}&limit=500");
                Assert.Equal(Idle, page.Num("total"));
                Assert.Equal(Math.Min(500, Idle - (i * 450)), page.Items().Count());
                return page;
            }).ToList();
            var pages = await Task.WhenAll(listings);
            var remotes = pages[1].Items().Select(c => c.Str("remote")).ToList();
            Assert.Equal(remotes.Order(StringComparer.Ordinal), remotes); // ascending by remote: sorted as asked

            // One address's quarter, found by filter, and one connection closed by id among them all.
            Assert.Equal(Idle / 4, (await admin.GetJsonAsync("/admin/connections?remote=127.0.0.3&limit=1")).Num("total"));
            var target = idle[7]!;
            var id = (await admin.GetJsonAsync($"/admin/connections?remote={target.LocalEndPoint}")).Items().Single().Str("id");
            Assert.Equal(202, (await admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}")).Status);
            Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(target, TimeSpan.FromSeconds(30)));

            await stopPinging.CancelAsync();
            Assert.True(await pings > 0);
            Assert.Contains("gateway_connections_active", await admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative), timeout.Token), StringComparison.Ordinal);
        }
        finally
        {
            foreach (var socket in idle)
            {
                socket?.Dispose();
            }
        }
    }
}
