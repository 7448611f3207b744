using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using Gateway.Protocols.Ftp;

namespace Gateway.Tests;

/// <summary>
/// SIGTERM as Kubernetes sends it, on a real gateway process: /readyz says 503 at once while the admin API
/// keeps answering, new clients are refused, the work in flight on each protocol finishes, and the process
/// exits 0. Each test starts and stops its own gateway.
/// </summary>
public sealed class DrainTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task ReadyzTurns503AtOnceWhileTheAdminApiServesAndTheRpcInFlightIsAnswered()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: timeout.Token);
        await TcpClients.StartSleepInFlightAsync(rpc, timeout.Token); // 3 s

        gateway.Terminate();

        // Not ready from the first moment; the admin endpoint itself is still up, and lists the draining connection.
        await admin.WaitForStatusAsync("/readyz", System.Net.HttpStatusCode.ServiceUnavailable);
        Assert.Equal("ok\n", await admin.Http.GetStringAsync(new Uri("/healthz", UriKind.Relative)));
        var listing = await admin.GetJsonAsync("/admin/connections?protocol=rpc");
        Assert.Equal("closing", listing.GetProperty("items")[0].GetProperty("state").GetString());
        Assert.True(await TcpClients.RefusedWithinAsync(gateway.Rpc, timeout.Token), "the RPC listener kept accepting during the drain");
        Assert.True(await TcpClients.RefusedWithinAsync(gateway.Echo, timeout.Token), "the echo listener kept accepting during the drain");

        // The echo connection is closed; the sleep in flight is answered, then its connection closes too.
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(echo, Patience));
        var reply = await rpc.Client.ReceiveAsync(timeout.Token);
        Assert.Equal(("sleep", 3000, "in-flight"), (reply?.Out, reply?.Result.GetInt32(), reply?.Id?.GetString()));
        Assert.Null(await rpc.Client.ReceiveAsync(timeout.Token));
        Assert.Equal(0, await gateway.WaitForExitAsync(Patience));
        Assert.True(await gateway.LogsAsync("Draining", Patience), gateway.Output);
    }

    [Fact]
    public async Task RequestStillRunningWhenTheShutdownTimeoutEndsIsAborted()
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, "--Gateway:Limits:ShutdownTimeoutSeconds=1"]);
        using var timeout = new CancellationTokenSource(Patience);
        await using var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await connection.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
        connection.Client.Send("sleep", 10_000);
        await connection.Client.FlushAsync(timeout.Token);
        await Task.Delay(300, timeout.Token);

        gateway.Terminate();
        // The process does not wait out the 10 s sleep: it aborts the connection after 1 s and exits.
        Assert.Equal(0, await gateway.WaitForExitAsync(TimeSpan.FromSeconds(9)));
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(connection.Socket, Patience));
    }

    [Fact]
    public async Task AnFtpDownloadInProgressCompletesByteForByteAndTheNextCommandGets421()
    {
        var root = Directory.CreateTempSubdirectory("gateway-drain-ftp-");
        var marker = Path.Combine(root.FullName, "started");
        try
        {
            Directory.CreateDirectory(Path.Combine(root.FullName, "alice"));
            var payload = new byte[6 * 1024 * 1024]; // read at ~64 KiB per 20 ms: about two seconds
            Random.Shared.NextBytes(payload);
            await File.WriteAllBytesAsync(Path.Combine(root.FullName, "alice", "big.bin"), payload);
            await using var gateway = await GatewayProcess.StartAsync(
            [
                .. GatewayProcess.LoopbackArgs, $"--Gateway:Listeners:Ftp:Root={root.FullName}",
                "--Gateway:Listeners:Ftp:Users:0:Name=alice", $"--Gateway:Listeners:Ftp:Users:0:PasswordHash={FtpPasswordHasher.Hash("alice-pw", 1000)}",
            ]);
            var ftp = gateway.Endpoint("ftp");
            var start = new ProcessStartInfo("python3") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            foreach (var argument in (string[])[Path.Combine(AppContext.BaseDirectory, "Scripts", "ftp_drain.py"), ftp.Address.ToString(), $"{ftp.Port}", "big.bin", marker])
            {
                start.ArgumentList.Add(argument);
            }

            var client = GatewayProcess.RunToExitAsync(start);
            var deadline = DateTime.UtcNow + Patience;
            while (!File.Exists(marker))
            {
                Assert.True(DateTime.UtcNow < deadline && !client.IsCompleted, $"the download never started: {(client.IsCompleted ? (await client).Stderr : "")}");
                await Task.Delay(20);
            }

            gateway.Terminate();
            Assert.True(await TcpClients.RefusedWithinAsync(ftp, CancellationToken.None), "the FTP listener kept accepting during the drain");
            var (code, stdout, stderr) = await client;
            Assert.True(code == 0, $"ftp_drain.py: {stdout}\n{stderr}");
            Assert.Contains("transfer: 226", stdout, StringComparison.Ordinal);
            Assert.Contains("after: 421", stdout, StringComparison.Ordinal);
            Assert.Contains($"sha256: {Convert.ToHexStringLower(SHA256.HashData(payload))}", stdout, StringComparison.Ordinal);
            Assert.Equal(0, await gateway.WaitForExitAsync(Patience));
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }
}
