using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit.Abstractions;

namespace Gateway.Tests;

/// <summary>
/// The dashboard at /admin/ui/ in a real browser: Debian's Chromium driven by playwright-core
/// (Browser/dashboard.mjs), against a real gateway and real client connections. Screenshots go to the test
/// output folder (printed with each test).
/// </summary>
public sealed class DashboardTests(ITestOutputHelper output)
{
    private const string Chromium = "/usr/bin/chromium";
    private static readonly Lazy<string> Driver = new(Install);

    [Fact]
    public async Task ThePageShowsALiveEchoConnectionClosesItWithAReasonAndSeesItLeave()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var admin = new AdminApi(gateway);
        using var echo = await OpenEchoAsync(gateway);
        var remote = echo.LocalEndPoint!.ToString()!;
        const string reason = "closed from the dashboard test";

        var seen = await RunAsync("close", nameof(ThePageShowsALiveEchoConnectionClosesItWithAReasonAndSeesItLeave), new { url = Url(gateway), remote, reason });

        Assert.Equal(0, seen.GetProperty("unauthorizedLoads").GetInt32()); // no key configured: none asked for
        var row = seen.GetProperty("row").EnumerateArray().Select(c => c.GetString()).ToArray();
        Assert.Equal(("echo", "kestrel", remote, "open"), (row[1], row[2], row[3], row[9]));
        Assert.Equal("2 B", row[6]); // "hi" received and echoed
        Assert.Equal(3, seen.GetProperty("paintedCharts").GetInt32());
        Assert.Contains(seen.GetProperty("listeners").EnumerateArray(), l => l.GetString()!.StartsWith($"echo\t127.0.0.1:{gateway.Echo.Port}\tkestrel\tno\t1\t", StringComparison.Ordinal));
        Assert.Contains(remote, seen.GetProperty("dialogText").GetString(), StringComparison.Ordinal);
        Assert.True(seen.GetProperty("rowGone").GetBoolean());

        // The connection really was closed, by the admin API, with the reason the page was given.
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(echo, TimeSpan.FromSeconds(10)));
        Assert.True(await gateway.LogsAsync($"from {remote} by admin request: {reason}", TimeSpan.FromSeconds(5)), gateway.Output);
        var metrics = await admin.MetricsAsync(m => AdminApi.SumOf(m, "gateway_connections_closed_by_admin_total", "protocol=\"echo\"") == 1);
        Assert.Equal(1, AdminApi.SumOf(metrics, "gateway_connections_closed_by_admin_total"));
    }

    [Fact]
    public async Task WithThePreforkPoolThePageShowsTheWorkersAndClosesAWorkersConnection()
    {
        await using var gateway = await GatewayProcess.StartAsync([
            .. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Echo:Model=prefork", "--Gateway:Workers:Count=2",
        ]);
        using var admin = new AdminApi(gateway);
        await admin.WaitForAsync("/admin/workers", w => w.GetArrayLength() == 2 && w.EnumerateArray().All(x => x.Str("state") == "ready"));
        using var echo = await OpenEchoAsync(gateway);
        var remote = echo.LocalEndPoint!.ToString()!;

        var seen = await RunAsync("close", nameof(WithThePreforkPoolThePageShowsTheWorkersAndClosesAWorkersConnection), new { url = Url(gateway), remote, reason = "pool test" });

        Assert.True(seen.GetProperty("workersShown").GetBoolean());
        var workers = Strings(seen.GetProperty("workers"));
        Assert.Equal(2, workers.Length);
        Assert.All(workers, w => Assert.Contains("\tasync\tready\t", w, StringComparison.Ordinal));
        var row = Strings(seen.GetProperty("row"));
        Assert.StartsWith("w", row[0], StringComparison.Ordinal); // a worker's connection id
        Assert.Matches(@"^prefork \(worker \d\)$", row[2]);
        Assert.True(seen.GetProperty("rowGone").GetBoolean());
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(echo, TimeSpan.FromSeconds(10)));
        // The pool's listener counts the connection the workers held, then its close.
        Assert.Contains(seen.GetProperty("listeners").EnumerateArray(), l => l.GetString()!.StartsWith($"echo\t127.0.0.1:{gateway.Echo.Port}\tprefork\tno\t1\t", StringComparison.Ordinal));
    }

    [Fact]
    public async Task WithAnApiKeyThePageAsksForItOnceRefusesAWrongOneAndKeepsItForTheTab()
    {
        const string key = "dashboard-test-key-7f3c";
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, $"--Gateway:Admin:ApiKey={key}"]);
        using var anonymous = new AdminApi(gateway);
        using var echo = await OpenEchoAsync(gateway);

        // The page is public (nothing secret in it); its data is not.
        Assert.Equal(HttpStatusCode.OK, (await anonymous.Http.GetAsync(new Uri("/admin/ui/", UriKind.Relative))).StatusCode);
        Assert.Equal(401, (await anonymous.SendAsync(HttpMethod.Get, "/admin/stats")).Status);

        var seen = await RunAsync("close", nameof(WithAnApiKeyThePageAsksForItOnceRefusesAWrongOneAndKeepsItForTheTab), new
        {
            url = Url(gateway),
            remote = echo.LocalEndPoint!.ToString(),
            reason = "key test",
            key,
            wrongKey = "not-the-key",
        });

        Assert.True(seen.GetProperty("unauthorizedLoads").GetInt32() > 0); // the page met the 401 and asked
        Assert.True(seen.GetProperty("refusedKeyShown").GetBoolean());
        Assert.Equal(key, seen.GetProperty("sessionKey").GetString());
        Assert.False(seen.GetProperty("keyDialogAfterReload").GetBoolean());
        Assert.True(seen.GetProperty("rowGone").GetBoolean());
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(echo, TimeSpan.FromSeconds(10)));
        Assert.DoesNotContain(key, gateway.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheConnectionTablePagesFiltersAndSortsOnTheServer()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        var echoes = new List<Socket>();
        var rpcs = new List<RpcConnection>();
        try
        {
            for (var i = 0; i < 30; i++)
            {
                echoes.Add(await OpenEchoAsync(gateway));
            }

            var from = IPAddress.Parse("127.0.0.2");
            for (var i = 0; i < 5; i++)
            {
                var rpc = await RpcConnection.OpenAsync(gateway.Rpc, from);
                rpcs.Add(rpc);
                for (var call = 0; call < 20; call++)
                {
                    await rpc.Client.CallAsync("ping");
                }
            }

            var seen = await RunAsync("browse", nameof(TheConnectionTablePagesFiltersAndSortsOnTheServer), new
            {
                url = Url(gateway),
                total = 35,
                rpc = 5,
                remotePrefix = "127.0.0.2",
                fromPrefix = 5,
            });

            Assert.Equal((25, true), (seen.GetProperty("firstPage").GetProperty("rows").GetInt32(), seen.GetProperty("firstPage").GetProperty("previousDisabled").GetBoolean()));
            Assert.Equal((10, true), (seen.GetProperty("secondPage").GetProperty("rows").GetInt32(), seen.GetProperty("secondPage").GetProperty("nextDisabled").GetBoolean()));
            Assert.Equal(Enumerable.Repeat("rpc", 5), Strings(seen.GetProperty("rpcOnly").GetProperty("protocols")));
            var byRemote = Strings(seen.GetProperty("byRemote").GetProperty("remotes"));
            Assert.Equal(rpcs.Select(r => r.Socket.LocalEndPoint!.ToString()).Order(StringComparer.Ordinal), byRemote.Order(StringComparer.Ordinal));

            var ascending = Strings(seen.GetProperty("ascending").GetProperty("remotes"));
            Assert.Equal("ascending", seen.GetProperty("ascending").GetProperty("ariaSort").GetString());
            Assert.Equal(ascending.Order(StringComparer.Ordinal), ascending);
            Assert.All(ascending, r => Assert.StartsWith("127.0.0.1:", r, StringComparison.Ordinal));
            var descending = Strings(seen.GetProperty("descending").GetProperty("remotes"));
            Assert.Equal("descending", seen.GetProperty("descending").GetProperty("ariaSort").GetString());
            Assert.Equal(descending.OrderDescending(StringComparer.Ordinal), descending);
            Assert.All(descending.Take(5), r => Assert.StartsWith("127.0.0.2:", r, StringComparison.Ordinal));
            Assert.Equal(3, seen.GetProperty("paintedCharts").GetInt32());
        }
        finally
        {
            echoes.ForEach(s => s.Dispose());
            await RpcConnection.DisposeAllAsync(rpcs);
        }
    }

    [Fact]
    public async Task AClientChosenNameWithMarkupIsShownAsTextAndNeverRuns()
    {
        // An FTP user can name a directory anything; the dashboard shows its cwd among the connection's details.
        const string name = "<img src=x onerror=window.__xss=1><b>bold<svg onload=window.__xss=1>"; // no '/' in a name
        var root = Directory.CreateTempSubdirectory("gateway-dashboard-ftp-");
        try
        {
            Directory.CreateDirectory(Path.Combine(root.FullName, "alice", name)); // under alice's home
            await using var gateway = await GatewayProcess.StartAsync([
                .. GatewayProcess.LoopbackArgs, $"--Gateway:Listeners:Ftp:Root={root.FullName}",
                "--Gateway:Listeners:Ftp:Users:0:Name=alice", $"--Gateway:Listeners:Ftp:Users:0:PasswordHash={Gateway.Protocols.Ftp.FtpPasswordHasher.Hash("alice-pw", 1000)}",
            ]);
            using var ftp = await TcpClients.ConnectAsync(gateway.Endpoint("ftp"));
            await FtpExchangeAsync(ftp, null, "220 ");
            await FtpExchangeAsync(ftp, "USER alice", "331 ");
            await FtpExchangeAsync(ftp, "PASS alice-pw", "230 ");
            await FtpExchangeAsync(ftp, $"CWD /{name}", "250 ");

            var seen = await RunAsync("markup", nameof(AClientChosenNameWithMarkupIsShownAsTextAndNeverRuns), new { url = Url(gateway), expect = "onerror" });
            Assert.Contains($"cwd: /{name}", seen.GetProperty("details").GetString(), StringComparison.Ordinal);
            Assert.Equal(0, seen.GetProperty("injectedElements").GetInt32());
            Assert.False(seen.GetProperty("injectedScriptRan").GetBoolean());
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task StatsCountEveryRpcRequestAndTheOpenConnectionsSecondBySecond()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var admin = new AdminApi(gateway);
        await using var rpc = await RpcConnection.OpenAsync(gateway.Rpc);
        using var echo = await OpenEchoAsync(gateway);
        const int calls = 137;
        for (var i = 0; i < calls; i++)
        {
            await rpc.Client.CallAsync("ping");
        }

        // Every request lands in exactly one sample; the samples after the last one show both connections.
        var stats = await admin.WaitForAsync("/admin/stats", s => Samples(s).Sum(x => x.Num("rpcRequests")) == calls
            && Samples(s).Last().GetProperty("connections") is var open && open.Num("rpc") == 1 && open.Num("echo") == 1 && open.Num("ftp") == 0);
        var busy = Samples(stats).Where(s => s.Num("rpcRequests") > 0).ToArray();
        Assert.All(busy, s =>
        {
            var p50 = s.GetProperty("rpcLatencyP50Ms").GetDouble();
            Assert.InRange(p50, 0.001, s.GetProperty("rpcLatencyP99Ms").GetDouble());
            Assert.InRange(s.GetProperty("rpcLatencyP99Ms").GetDouble(), p50, s.GetProperty("rpcLatencyMaxMs").GetDouble());
        });
        Assert.All(Samples(stats).Where(s => s.Num("rpcRequests") == 0), s => Assert.Equal(JsonValueKind.Null, s.GetProperty("rpcLatencyP50Ms").ValueKind));
        Assert.Contains(Samples(stats), s => s.GetProperty("bytesInPerSecond").GetDouble() > 0);

        var times = Samples(stats).Select(s => s.GetProperty("at").GetDateTimeOffset()).ToArray();
        Assert.Equal(times.Order(), times);
        await admin.WaitForAsync("/admin/stats", s => Samples(s).Length > 3); // a sample a second since the start
        Assert.Equal(3, Samples(await admin.GetJsonAsync("/admin/stats?seconds=3")).Length);
        foreach (var bad in new[] { "seconds=0", "seconds=301", "seconds=x" })
        {
            Assert.Equal(400, (await admin.SendAsync(HttpMethod.Get, $"/admin/stats?{bad}")).Status);
        }
    }

    [Fact]
    public async Task TheVendoredChartLibraryIsThePinnedNpmPackage()
    {
        // The gateway embeds Admin/Ui/vendor so it builds and serves the page without npm; these must be the
        // very files of the uPlot version Admin/Ui/package-lock.json pins (run `npm ci && npm run vendor` there
        // after changing it).
        var ui = Path.Combine(GatewayProcess.Metadata("RepositoryRoot"), "src", "Gateway", "Admin", "Ui");
        var work = Directory.CreateTempSubdirectory("gateway-ui-");
        try
        {
            File.Copy(Path.Combine(ui, "package.json"), Path.Combine(work.FullName, "package.json"));
            File.Copy(Path.Combine(ui, "package-lock.json"), Path.Combine(work.FullName, "package-lock.json"));
            var (code, stdout, stderr) = await Npm(work.FullName, "ci", "--no-audit", "--no-fund");
            Assert.True(code == 0, $"npm ci failed:\n{stdout}\n{stderr}");
            var package = Path.Combine(work.FullName, "node_modules", "uplot");
            foreach (var (vendored, original) in new[]
            {
                ("uPlot.iife.min.js", "dist/uPlot.iife.min.js"), ("uPlot.min.css", "dist/uPlot.min.css"), ("uPlot.LICENSE", "LICENSE"),
            })
            {
                var ours = await File.ReadAllBytesAsync(Path.Combine(ui, "vendor", vendored));
                var theirs = await File.ReadAllBytesAsync(Path.Combine(package, original));
                Assert.True(ours.SequenceEqual(theirs), $"vendor/{vendored} differs from the pinned package's {original}");
            }
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>Sends a command (none for the greeting) and reads replies until one starts with <paramref name="expected"/>.</summary>
    private static async Task FtpExchangeAsync(Socket socket, string? command, string expected)
    {
        if (command is not null)
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(command + "\r\n"), SocketFlags.None);
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var replies = new StringBuilder();
        var buffer = new byte[4096];
        while (!replies.ToString().Split("\r\n").Any(line => line.StartsWith(expected, StringComparison.Ordinal)))
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).AsTask().ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : -1, TaskScheduler.Default);
            Assert.True(n > 0, $"no '{expected}' reply to {command}: {replies}");
            replies.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
    }

    private static JsonElement[] Samples(JsonElement stats) => [.. stats.GetProperty("samples").EnumerateArray()];

    private static string[] Strings(JsonElement array) => array.EnumerateArray().Select(e => e.GetString()!).ToArray();

    private static string Url(GatewayProcess gateway) => gateway.Admin.ToString().TrimEnd('/');

    private static async Task<Socket> OpenEchoAsync(GatewayProcess gateway)
    {
        var socket = await TcpClients.ConnectAsync(gateway.Echo);
        await socket.SendAsync("hi"u8.ToArray(), SocketFlags.None);
        var back = new byte[2];
        for (var got = 0; got < back.Length;)
        {
            got += await socket.ReceiveAsync(back.AsMemory(got), SocketFlags.None);
        }

        return socket;
    }

    /// <summary>Runs one scenario of Browser/dashboard.mjs; returns what it saw, or fails with its error.</summary>
    private async Task<JsonElement> RunAsync(string scenario, string test, object options)
    {
        var screenshots = Path.Combine(AppContext.BaseDirectory, "screenshots", test);
        if (Directory.Exists(screenshots))
        {
            Directory.Delete(screenshots, recursive: true);
        }

        Directory.CreateDirectory(screenshots);
        output.WriteLine($"screenshots: {screenshots}");
        var arguments = JsonSerializer.SerializeToNode(options)!.AsObject();
        arguments["screenshots"] = screenshots;
        var start = new ProcessStartInfo("node") { WorkingDirectory = Driver.Value };
        foreach (var argument in new[] { "dashboard.mjs", scenario, arguments.ToJsonString() })
        {
            start.ArgumentList.Add(argument);
        }

        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(start, limit: TimeSpan.FromMinutes(3));
        output.WriteLine(stdout);
        var last = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        Assert.True(last is not null && last.StartsWith('{'), $"the browser driver printed no result (exit {code}):\n{stdout}\n{stderr}");
        var seen = JsonDocument.Parse(last).RootElement.Clone();
        Assert.True(code == 0 && seen.GetProperty("ok").GetBoolean(), $"in the browser: {seen}\n{stderr}");
        Assert.Empty(seen.GetProperty("consoleErrors").EnumerateArray());
        Assert.Empty(seen.GetProperty("violations").EnumerateArray()); // the Content-Security-Policy holds
        var files = Directory.GetFiles(screenshots, "*.png");
        Assert.NotEmpty(files);
        foreach (var file in files)
        {
            var header = new byte[8];
            await using var png = File.OpenRead(file);
            await png.ReadExactlyAsync(header);
            Assert.Equal("\x89PNG\r\n\x1a\n", Encoding.Latin1.GetString(header));
        }

        return seen;
    }

    /// <summary>playwright-core from Browser/package-lock.json (npm ci, once per run) and Debian's Chromium.</summary>
    private static string Install()
    {
        Assert.True(File.Exists(Chromium), $"{Chromium} is missing: install Debian's chromium package (.ci/run does).");
        var directory = Path.Combine(GatewayProcess.Metadata("RepositoryRoot"), "tests", "Gateway.Tests", "Browser");
        if (!File.Exists(Path.Combine(directory, "node_modules", ".package-lock.json")))
        {
            var (code, stdout, stderr) = Npm(directory, "ci", "--no-audit", "--no-fund").GetAwaiter().GetResult();
            Assert.True(code == 0, $"npm ci in {directory} failed:\n{stdout}\n{stderr}");
        }

        return directory;
    }

    private static Task<(int ExitCode, string Stdout, string Stderr)> Npm(string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo("npm") { WorkingDirectory = directory };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return GatewayProcess.RunToExitAsync(start, limit: TimeSpan.FromMinutes(3));
    }
}
