using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Gateway.Tests;

/// <summary>/metrics as Prometheus sees it: our series and Kestrel's, promtool-clean, and scraped by a real Prometheus.</summary>
public sealed class TelemetryTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private static async Task MakeTrafficAsync(GatewayProcess gateway)
    {
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc);
        await rpc.Client.CallAsync("ping", "metrics");
        rpc.Client.SendRaw("{not json"u8);
        await rpc.Client.FlushAsync();
        await rpc.Client.ReceiveAsync();
    }

    [Fact]
    public async Task MetricsCarryGatewayAndKestrelSeriesAndPassPromtool()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        await MakeTrafficAsync(gateway);
        using var admin = new AdminApi(gateway);
        var metrics = await admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative));

        Assert.Contains("gateway_connections_accepted_total{", metrics, StringComparison.Ordinal);
        Assert.Contains("gateway_io_bytes_total{", metrics, StringComparison.Ordinal);
        Assert.Matches("gateway_request_duration_seconds_count\\{[^}]*operation=\"ping\"[^}]*outcome=\"ok\"[^}]*protocol=\"rpc\"[^}]*\\} 1", metrics);
        Assert.Matches("gateway_protocol_errors_total\\{[^}]*code=\"bad_json\"[^}]*\\} 1", metrics);
        Assert.Contains("gateway_request_duration_seconds_bucket{", metrics, StringComparison.Ordinal);
        Assert.Contains("\nkestrel_", metrics, StringComparison.Ordinal);
        Assert.Contains("\ndotnet_", metrics, StringComparison.Ordinal);
        Assert.Single(Regex.Matches(metrics, "^# TYPE gateway_request_duration_seconds histogram$", RegexOptions.Multiline));

        // OpenMetrics, which Prometheus asks for first: the request histogram is inside the exposition, before its end.
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("/metrics", UriKind.Relative));
        request.Headers.Accept.ParseAdd("application/openmetrics-text; version=1.0.0");
        using var openMetrics = await admin.Http.SendAsync(request);
        var exposition = await openMetrics.Content.ReadAsStringAsync();
        Assert.StartsWith("application/openmetrics-text", openMetrics.Content.Headers.ContentType?.MediaType, StringComparison.Ordinal);
        Assert.EndsWith("\n# EOF\n", exposition, StringComparison.Ordinal);
        Assert.Equal(exposition.Length, openMetrics.Content.Headers.ContentLength);
        Assert.Contains("# UNIT gateway_request_duration_seconds seconds\n", exposition, StringComparison.Ordinal);
        Assert.Matches("gateway_request_duration_seconds_bucket\\{[^}]*operation=\"ping\"[^}]*le=\"\\+Inf\"\\} 1\n", exposition);

        var start = new ProcessStartInfo("promtool", ["check", "metrics"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var promtool = Process.Start(start)!;
        var stdout = promtool.StandardOutput.ReadToEndAsync();
        var stderr = promtool.StandardError.ReadToEndAsync();
        await promtool.StandardInput.WriteAsync(metrics);
        promtool.StandardInput.Close();
        using var timeout = new CancellationTokenSource(Patience);
        try
        {
            await promtool.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!promtool.HasExited)
            {
                promtool.Kill();
            }
        }

        Assert.True(promtool.ExitCode == 0, $"promtool check metrics exited {promtool.ExitCode}:\n{await stdout}{await stderr}");
    }

    [Fact]
    public async Task PrometheusServerScrapesTheGatewayAsAHealthyTarget()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        await MakeTrafficAsync(gateway);
        var directory = Directory.CreateTempSubdirectory("gateway-prometheus-");
        var config = Path.Combine(directory.FullName, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: gateway
                metrics_path: /metrics
                static_configs:
                  - targets: ['{gateway.Admin.Authority}']
            """);
        var port = FreeLoopbackPort();
        var start = new ProcessStartInfo("prometheus",
        [
            $"--config.file={config}",
            $"--storage.tsdb.path={Path.Combine(directory.FullName, "data")}",
            $"--web.listen-address=127.0.0.1:{port}",
        ])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        var log = new StringBuilder();
        using var prometheus = new Process { StartInfo = start };
        prometheus.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        prometheus.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        prometheus.Start();
        prometheus.BeginOutputReadLine();
        prometheus.BeginErrorReadLine();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(10) };
            var health = "";
            var deadline = DateTime.UtcNow + Patience;
            while (health != "up" && DateTime.UtcNow < deadline && !prometheus.HasExited)
            {
                await Task.Delay(500);
                try
                {
                    var targets = JsonDocument.Parse(await http.GetStringAsync(new Uri("/api/v1/targets", UriKind.Relative))).RootElement;
                    health = targets.GetProperty("data").GetProperty("activeTargets").EnumerateArray()
                        .Select(t => t.GetProperty("health").GetString()).FirstOrDefault() ?? "";
                }
                catch (HttpRequestException)
                {
                    // Prometheus is still starting.
                }
            }

            Assert.True(health == "up", $"target health '{health}'; prometheus said:\n{log}");
            var query = JsonDocument.Parse(await http.GetStringAsync(new Uri("/api/v1/query?query=gateway_connections_accepted_total", UriKind.Relative))).RootElement;
            Assert.NotEqual(0, query.GetProperty("data").GetProperty("result").GetArrayLength());

            // The request histogram, which the gateway writes itself, is ingested as one: its count and a quantile.
            var pings = JsonDocument.Parse(await http.GetStringAsync(new Uri(
                "/api/v1/query?query=" + Uri.EscapeDataString("gateway_request_duration_seconds_count{operation=\"ping\",outcome=\"ok\"}"), UriKind.Relative))).RootElement;
            Assert.Equal("1", pings.GetProperty("data").GetProperty("result")[0].GetProperty("value")[1].GetString());
            var median = JsonDocument.Parse(await http.GetStringAsync(new Uri(
                "/api/v1/query?query=" + Uri.EscapeDataString("histogram_quantile(0.5, gateway_request_duration_seconds_bucket{operation=\"ping\"})"), UriKind.Relative))).RootElement;
            var seconds = double.Parse(median.GetProperty("data").GetProperty("result")[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
            Assert.InRange(seconds, 0, 10);
        }
        finally
        {
            if (!prometheus.HasExited)
            {
                prometheus.Kill();
            }

            await prometheus.WaitForExitAsync(CancellationToken.None);
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task TracesAndRequestDurationsAreExportedOverOtlpWhenTheEndpointIsSet()
    {
        // A loopback OTLP/HTTP receiver: it records what the gateway posts to /v1/traces.
        var port = FreeLoopbackPort();
        using var receiver = new HttpListener();
        receiver.Prefixes.Add($"http://127.0.0.1:{port}/");
        receiver.Start();
        var environment = new Dictionary<string, string>
        {
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = $"http://127.0.0.1:{port}",
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "200",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "500",
        };
        await using var gateway = await GatewayProcess.StartAsync(GatewayProcess.LoopbackArgs, environment);
        await MakeTrafficAsync(gateway);

        var paths = new List<string>();
        var deadline = DateTime.UtcNow + Patience;
        bool sawSpan = false, sawDurations = false;
        while (!(sawSpan && sawDurations) && DateTime.UtcNow < deadline)
        {
            var next = receiver.GetContextAsync();
            if (await Task.WhenAny(next, Task.Delay(deadline - DateTime.UtcNow)) != next)
            {
                break;
            }

            var context = await next;
            using var body = new MemoryStream();
            await context.Request.InputStream.CopyToAsync(body);
            paths.Add(context.Request.Url!.AbsolutePath);
            context.Response.StatusCode = 200;
            context.Response.Close();
            // Protobuf carries strings as UTF-8 bytes: the span's name is there to find.
            sawSpan |= context.Request.Url.AbsolutePath == "/v1/traces"
                && body.ToArray().AsSpan().IndexOf("rpc ping"u8) >= 0;
            sawDurations |= context.Request.Url.AbsolutePath == "/v1/metrics"
                && body.ToArray().AsSpan().IndexOf("gateway.request.duration"u8) >= 0;
        }

        Assert.True(sawSpan, $"no trace with an 'rpc ping' span reached the receiver; posts seen: [{string.Join(", ", paths)}]\n{gateway.Output}");
        Assert.True(sawDurations, $"no metrics post carried gateway.request.duration; posts seen: [{string.Join(", ", paths)}]");

        // With OTLP on, the SDK's histogram is the one /metrics shows too: once, counting the ping.
        using var admin = new AdminApi(gateway);
        var metrics = await admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        Assert.Single(Regex.Matches(metrics, "^# TYPE gateway_request_duration_seconds histogram$", RegexOptions.Multiline));
        Assert.Matches("gateway_request_duration_seconds_count\\{[^}]*operation=\"ping\"[^}]*outcome=\"ok\"[^}]*protocol=\"rpc\"[^}]*\\} 1", metrics);
    }

    private static int FreeLoopbackPort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
