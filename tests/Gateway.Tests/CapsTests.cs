using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests;

/// <summary>
/// <c>MaxConnections</c> and <c>MaxConnectionsPerIp</c> on every model that holds many connections at once: the
/// excess is closed at accept, counted with its reason, and a flood of it does not stop the admitted clients
/// being served. (The loop server takes one connection at a time, so nothing is ever over a cap there; the pool
/// applies the caps per worker process: PreforkTests.)
/// </summary>
public sealed class CapsTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    public static TheoryData<string> Models => [.. Tests.Models.Names.Where(m => m != "iterative")];

    [Theory]
    [MemberData(nameof(Models))]
    public async Task ExcessConnectionsAreClosedAtAcceptCountedAndTheAdmittedKeepBeingServed(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, .. Tests.Models.Args(model, "Rpc"), "--Gateway:Limits:MaxConnections=3", "--Gateway:Limits:MaxConnectionsPerIp=2"]);
        using var timeout = new CancellationTokenSource(Patience);
        var admitted = new List<RpcConnection>();
        try
        {
            // Two from 127.0.0.1 and one from 127.0.0.2: the per-address cap and the total cap both reached.
            admitted.Add(await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token));
            admitted.Add(await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token));
            admitted.Add(await RpcConnection.OpenAsync(gateway.Rpc, IPAddress.Parse("127.0.0.2"), timeout.Token));
            foreach (var connection in admitted)
            {
                Assert.Equal("pong", (await connection.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
            }

            // A flood of excess connections, from a third address (over the total) and from 127.0.0.1 (over both):
            // each is closed without a byte, while the admitted clients' requests are answered throughout.
            var flood = Enumerable.Range(0, 100).Select(async i =>
            {
                using var socket = await TcpClients.ConnectAsync(gateway.Rpc, IPAddress.Parse(i % 2 == 0 ? "127.0.0.3" : "127.0.0.1"), timeout.Token);
                return await TcpClients.ReadUntilClosedAsync(socket, Patience);
            }).ToList();
            for (var round = 0; round < 20; round++)
            {
                foreach (var connection in admitted)
                {
                    Assert.Equal($"r{round}", (await connection.Client.CallAsync("ping", $"r{round}", cancellationToken: timeout.Token)).Result.GetString());
                }
            }

            Assert.All(await Task.WhenAll(flood), received => Assert.Equal(0, received));

            using var admin = new AdminApi(gateway);
            var metrics = await admin.MetricsAsync(timeout.Token);
            var overTotal = Rejected(metrics, "max_connections");
            var overAddress = Rejected(metrics, "max_connections_per_ip");
            Assert.Equal(100, overTotal + overAddress);
            Assert.True(overTotal >= 50, metrics); // every one from 127.0.0.3, at least
            Assert.Equal(3, (await admin.GetJsonAsync("/admin/connections?protocol=rpc")).GetProperty("total").GetInt32());

            // A slot freed is a slot to take: the next client from the third address is served.
            await admitted[2].DisposeAsync();
            admitted.RemoveAt(2);
            string? served = null;
            for (var attempt = 0; attempt < 50 && served is null; attempt++)
            {
                await using var again = await RpcConnection.OpenAsync(gateway.Rpc, IPAddress.Parse("127.0.0.3"), timeout.Token);
                try
                {
                    served = (await again.Client.CallAsync("ping", "in", cancellationToken: timeout.Token)).Result.GetString();
                }
                catch (Exception e) when (e is EndOfStreamException or IOException or SocketException)
                {
                    await Task.Delay(100, timeout.Token); // the gateway has not seen the close yet
                }
            }

            Assert.Equal("in", served);
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(admitted);
        }
    }

    private static long Rejected(string metrics, string reason) =>
        (long)AdminApi.SumOf(metrics, "gateway_connections_rejected_total", "protocol=\"rpc\"", $"reason=\"{reason}\"");
}
