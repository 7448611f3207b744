using System.Text.Json;

namespace Gateway.Tests;

/// <summary>
/// The dashboard's one-second samples (GET /admin/stats) while many connections are answered at once: every RPC
/// request is recorded by the thread that answered it, so the latency histograms (the dashboard's and /metrics')
/// have many writers at a time.
/// </summary>
public sealed class AdminStatsConcurrencyTests
{
    [Fact]
    public async Task StatsCountEveryRpcRequestWhenManyConnectionsAreAnsweredAtOnce()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var admin = new AdminApi(gateway);
        const int connections = 32, batches = 250, pipelined = 20;
        var connected = new RpcConnection?[connections];
        try
        {
            for (var i = 0; i < connections; i++)
            {
                connected[i] = await RpcConnection.OpenAsync(gateway.Rpc);
            }

            // Pipelined batches on every connection at once, so requests finish on several threads together.
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await Task.WhenAll(connected.Select(connection => Task.Run(async () =>
            {
                for (var batch = 0; batch < batches; batch++)
                {
                    for (var k = 0; k < pipelined; k++)
                    {
                        connection!.Client.Send("ping");
                    }

                    await connection!.Client.FlushAsync(bound.Token);
                    for (var k = 0; k < pipelined; k++)
                    {
                        var reply = await connection.Client.ReceiveAsync(bound.Token);
                        Assert.Equal("pong", reply?.Out);
                    }
                }
            })));
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(connected);
        }

        // Every request lands in exactly one sample (the last within a second or two), and the sampler, a hosted
        // service whose failure stops the host, still runs.
        const long sent = connections * batches * pipelined;
        long counted = 0;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!gateway.HasExited && DateTime.UtcNow < deadline && (counted = Counted(await admin.GetJsonAsync("/admin/stats"))) != sent)
        {
            await Task.Delay(200);
        }

        Assert.False(gateway.HasExited, $"the gateway stopped:\n{gateway.Output}");
        Assert.True(counted == sent, $"/admin/stats counted {counted} RPC requests of the {sent} answered");
        var last = LastSampleAt(await admin.GetJsonAsync("/admin/stats"));
        await admin.WaitForAsync("/admin/stats", s => LastSampleAt(s) > last);
        Assert.DoesNotContain("BackgroundService has thrown", gateway.Output, StringComparison.Ordinal);

        // /metrics counts them exactly too: the request histogram takes concurrent writes from every thread.
        var metrics = await admin.MetricsAsync();
        Assert.Equal(sent, AdminApi.SumOf(metrics, "gateway_request_duration_seconds_count", "operation=\"ping\""));
        Assert.Equal(sent, AdminApi.SumOf(metrics, "gateway_request_duration_seconds_bucket", "operation=\"ping\"", "le=\"+Inf\""));
    }

    private static long Counted(JsonElement stats) => stats.GetProperty("samples").EnumerateArray().Sum(s => s.Num("rpcRequests"));

    private static DateTimeOffset LastSampleAt(JsonElement stats) =>
        stats.GetProperty("samples").EnumerateArray().Last().GetProperty("at").GetDateTimeOffset();
}
