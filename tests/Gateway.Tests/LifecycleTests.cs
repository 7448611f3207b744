using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests;

/// <summary>Start from the README's command, idle timeouts and the connection limits, each on its own gateway (the drain: DrainTests).</summary>
public sealed class LifecycleTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task IdleConnectionsAreClosedAfterIdleTimeoutSeconds()
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, "--Gateway:Limits:IdleTimeoutSeconds=1"]);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo);
        using var rpc = await TcpClients.ConnectAsync(gateway.Rpc);
        await rpc.SendAsync(new byte[] { 40, 0 }, SocketFlags.None); // half a frame header, then silence
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(echo, Patience));
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(rpc, Patience));
    }

    [Fact]
    public async Task ConnectionsOverMaxConnectionsAreClosedAtOnceAndServedAgainWhenOneLeaves()
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, "--Gateway:Limits:MaxConnections=2"]);
        using var timeout = new CancellationTokenSource(Patience);
        var first = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        await using var second = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await first.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
        Assert.Equal("pong", (await second.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);

        using (var third = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: timeout.Token))
        {
            Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(third, Patience));
        }

        await first.DisposeAsync();
        // The slot frees when the gateway sees the close; retry briefly until it has.
        string? served = null;
        for (var attempt = 0; attempt < 50 && served is null; attempt++)
        {
            await using var again = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
            try
            {
                served = (await again.Client.CallAsync("ping", "again", cancellationToken: timeout.Token)).Result.GetString();
            }
            catch (Exception e) when (e is EndOfStreamException or IOException)
            {
                await Task.Delay(100, timeout.Token);
            }
        }

        Assert.Equal("again", served);
        Assert.True(await gateway.LogsAsync("Rejected 1 connection(s) over the limits", Patience), gateway.Output);
        using var admin = new AdminApi(gateway);
        Assert.Matches("gateway_connections_rejected_total\\{[^}]*protocol=\"echo\"[^}]*reason=\"max_connections\"[^}]*\\} 1",
            await admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative)));
    }

    [Fact]
    public async Task MaxConnectionsPerIpLimitsEachAddressOnItsOwn()
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, "--Gateway:Limits:MaxConnectionsPerIp=1"]);
        using var timeout = new CancellationTokenSource(Patience);
        await using var first = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await first.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);

        using var sameAddress = await TcpClients.ConnectAsync(gateway.Rpc, IPAddress.Loopback, timeout.Token);
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(sameAddress, Patience));

        // Another loopback address is another client: it gets its own allowance.
        using var otherAddress = await TcpClients.ConnectAsync(gateway.Echo, IPAddress.Parse("127.0.0.2"), timeout.Token);
        await otherAddress.SendAsync("hi"u8.ToArray(), SocketFlags.None, timeout.Token);
        var buffer = new byte[2];
        Assert.Equal(2, await otherAddress.ReceiveAsync(buffer, SocketFlags.None, timeout.Token));
    }

    [Fact]
    public async Task HealthzAnswersOnTheAdminUrl()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var http = new HttpClient { Timeout = Patience };
        using var response = await http.GetAsync(new Uri(gateway.Admin, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("ok", (await response.Content.ReadAsStringAsync()).Trim());
    }

    [Fact]
    public async Task DotnetRunFromTheRepositoryRootServesEchoAndRpc()
    {
        // The README's run command, with ports moved to loopback ephemeral ones for the test.
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = GatewayProcess.Metadata("RepositoryRoot"),
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in (string[])["run", "--project", "src/Gateway", "--no-build", "-c", GatewayProcess.Metadata("Configuration"), "--", .. GatewayProcess.LoopbackArgs])
        {
            start.ArgumentList.Add(arg);
        }

        await using var gateway = await GatewayProcess.StartAsync(start);
        using var timeout = new CancellationTokenSource(Patience);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: timeout.Token);
        await echo.SendAsync("hello\n"u8.ToArray(), SocketFlags.None, timeout.Token);
        var buffer = new byte[6];
        var got = 0;
        while (got < buffer.Length)
        {
            got += await echo.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, timeout.Token);
        }

        Assert.Equal("hello\n"u8.ToArray(), buffer);
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
    }
}
