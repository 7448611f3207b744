using System.Net.Sockets;

namespace Gateway.Tests;

/// <summary>Filters, sort and paging, on a gateway of its own so the registry holds exactly these connections.</summary>
public sealed class AdminListingTests
{
    [Fact]
    public async Task FiltersSortAndPagingSelectTheRightConnections()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var admin = new AdminApi(gateway);
        var echoes = new List<Socket>();
        var rpcs = new List<RpcConnection>();
        try
        {
            foreach (var size in new[] { 300, 100, 400, 200 })
            {
                var socket = await TcpClients.ConnectAsync(gateway.Echo);
                echoes.Add(socket);
                await socket.SendAsync(new byte[size], SocketFlags.None);
                var buffer = new byte[size];
                for (var got = 0; got < size;)
                {
                    got += await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None);
                }
            }

            foreach (var calls in new[] { 1, 3 })
            {
                var rpc = await RpcConnection.OpenAsync(gateway.Rpc);
                rpcs.Add(rpc);
                for (var i = 0; i < calls; i++)
                {
                    await rpc.Client.CallAsync("ping");
                }
            }

            await admin.WaitForAsync("/admin/connections?protocol=echo&sort=bytesOut", p => p.Items().All(i => i.Num("bytesOut") > 0) && p.Num("total") == 4);
            Assert.Equal(6, (await admin.GetJsonAsync("/admin/connections")).Num("total"));
            Assert.Equal(2, (await admin.GetJsonAsync("/admin/connections?protocol=RPC")).Num("total"));
            Assert.Equal(6, (await admin.GetJsonAsync("/admin/connections?model=kestrel")).Num("total"));
            Assert.Equal(0, (await admin.GetJsonAsync("/admin/connections?model=epoll")).Num("total"));

            var descending = await admin.GetJsonAsync("/admin/connections?protocol=echo&sort=-bytesIn");
            Assert.Equal([400L, 300, 200, 100], descending.Items().Select(i => i.Num("bytesIn")));
            var ascending = await admin.GetJsonAsync("/admin/connections?protocol=echo&sort=bytesIn");
            Assert.Equal([100L, 200, 300, 400], ascending.Items().Select(i => i.Num("bytesIn")));
            var page = await admin.GetJsonAsync("/admin/connections?protocol=echo&sort=-bytesIn&offset=1&limit=2");
            Assert.Equal((4L, 1L, 2L), (page.Num("total"), page.Num("offset"), page.Num("limit")));
            Assert.Equal([300L, 200], page.Items().Select(i => i.Num("bytesIn")));
            var byArrival = await admin.GetJsonAsync("/admin/connections?protocol=echo");
            Assert.Equal([300L, 100, 400, 200], byArrival.Items().Select(i => i.Num("bytesIn")));

            var busiest = await admin.GetJsonAsync("/admin/connections?sort=-messages&limit=1");
            Assert.Equal(("rpc", 3L), (busiest.Items().Single().Str("protocol"), busiest.Items().Single().Num("messages")));

            var one = echoes[2].LocalEndPoint!.ToString();
            var byRemote = await admin.GetJsonAsync($"/admin/connections?remote={one}");
            Assert.Equal(400, byRemote.Items().Single().Num("bytesIn"));
            Assert.Equal(6, (await admin.GetJsonAsync("/admin/connections?remote=127.0.0.")).Num("total"));

            // Idle: everything sits still, then one echo connection speaks; only it is not idle.
            await Task.Delay(TimeSpan.FromSeconds(3));
            await echoes[0].SendAsync(new byte[1], SocketFlags.None);
            await echoes[0].ReceiveAsync(new byte[1], SocketFlags.None);
            var idle = await admin.GetJsonAsync("/admin/connections?minIdleSeconds=2&limit=1000");
            Assert.Equal(5, idle.Num("total"));
            Assert.DoesNotContain(echoes[0].LocalEndPoint!.ToString(), idle.Items().Select(i => i.Str("remote")));

            foreach (var bad in new[] { "limit=0", "limit=1001", "offset=-1", "sort=-color", "minIdleSeconds=-1" })
            {
                var (status, problem) = await admin.SendAsync(HttpMethod.Get, $"/admin/connections?{bad}");
                Assert.Equal(400, status);
                Assert.Equal(400, problem.GetProperty("status").GetInt32());
            }
        }
        finally
        {
            echoes.ForEach(s => s.Dispose());
            foreach (var rpc in rpcs)
            {
                await rpc.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task AnIpv4ClientOfADualStackListenerIsShownAndFilteredAsIpv4()
    {
        // "*" (the default address) is a dual-stack socket: IPv4 clients arrive as ::ffff:a.b.c.d.
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Echo:Address=*"]);
        using var admin = new AdminApi(gateway);
        using var socket = await TcpClients.ConnectAsync(gateway.Echo);
        var remote = socket.LocalEndPoint!.ToString()!;
        var page = await admin.WaitForAsync("/admin/connections?remote=127.0.0.1", p => p.Num("total") == 1);
        Assert.Equal(remote, page.Items().Single().Str("remote"));
        Assert.Equal($"127.0.0.1:{gateway.Echo.Port}", page.Items().Single().Str("local"));
    }
}
