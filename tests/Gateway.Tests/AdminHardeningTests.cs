using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Gateway.Tests;

/// <summary>
/// The admin endpoint against hostile input, on real gateway processes: query values at and past their limits
/// (in the gateway and on the prefork pool), a listing deeper than one control frame, a close reason carrying
/// control characters, and the requests a web page in the operator's browser can make (another Host, another
/// Origin). Each test starts and stops its own gateway.
/// </summary>
public sealed class AdminHardeningTests
{
    private const string Key = "hardening-admin-key-51c2";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private static string[] Args(bool prefork, params string[] more) => prefork
        ? [.. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Echo:Model=prefork", "--Gateway:Workers:Count=2", .. more]
        : [.. GatewayProcess.LoopbackArgs, .. more];

    /// <summary>One request with the headers a browser would add; the status, media type and body as they came.</summary>
    private static async Task<(int Status, string? MediaType, string Body)> SendAsync(
        AdminApi admin, HttpMethod method, string path, string? host = null, string? origin = null)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (host is not null)
        {
            request.Headers.Host = host;
        }

        if (origin is not null)
        {
            request.Headers.TryAddWithoutValidation("Origin", origin);
        }

        using var response = await admin.Http.SendAsync(request);
        return ((int)response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync());
    }

    private static async Task AssertProblemAsync(AdminApi admin, int status, HttpMethod method, string path, string? host = null, string? origin = null)
    {
        var (got, mediaType, body) = await SendAsync(admin, method, path, host, origin);
        var what = $"{method} {path} (Host {host ?? "as sent"}, Origin {origin ?? "none"})";
        Assert.True(got == status, $"{what}: {got}, not {status}: {body}");
        Assert.True(mediaType == "application/problem+json", $"{what}: {mediaType}, not a problem document: {body}");
        Assert.Equal(status, JsonDocument.Parse(body).RootElement.GetProperty("status").GetInt32());
    }

    private static async Task<JsonElement> PageAsync(AdminApi admin, string query)
    {
        var (status, _, body) = await SendAsync(admin, HttpMethod.Get, $"/admin/connections?{query}");
        Assert.True(status == 200, $"GET /admin/connections?{query}: {status}, not 200: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ListingValuesOutOfRangeAre400ProblemsAnOffsetPastTheEndIsAnEmptyPageAndNothingIs500(bool prefork)
    {
        await using var gateway = await GatewayProcess.StartAsync(Args(prefork));
        using var admin = new AdminApi(gateway);
        var echoes = new List<Socket>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                echoes.Add(await TcpClients.ConnectAsync(gateway.Echo));
            }

            await admin.WaitForAsync("/admin/connections?protocol=echo", page => page.Num("total") == 3, Patience);

            // Past the end, however far (offset + limit beyond int.MaxValue included): every match counted, none listed.
            foreach (var query in (string[])["offset=2147483647", "offset=2147483647&limit=1000", "offset=2147482648&limit=1000",
                "offset=2147483647&sort=-bytesIn&limit=1", "offset=3&protocol=echo", "offset=1000000&sort=remote"])
            {
                var page = await PageAsync(admin, query);
                Assert.True(page.Num("total") == 3 && !page.Items().Any(), $"{query}: {page}");
                Assert.Empty(page.GetProperty("unansweredWorkers").EnumerateArray());
            }

            // Out of range, not a number, an unknown name: a 400 problem document, as for the rest of the API.
            foreach (var query in (string[])[
                "offset=-1", "offset=-2147483648", "offset=2147483648", "offset=99999999999999999999", "offset=1e3", "offset=abc",
                "limit=0", "limit=-1", "limit=1001", "limit=2147483647", "limit=2147483648", "limit=1.0",
                "minIdleSeconds=-1", "minIdleSeconds=NaN", "minIdleSeconds=Infinity", "minIdleSeconds=-Infinity", "minIdleSeconds=1e400", "minIdleSeconds=x",
                "sort=color", "sort=-bytes", $"sort={new string('s', 4000)}",
                "protocol=smtp", $"protocol={new string('p', 4000)}", "model=fork", "model=kestrel%00"])
            {
                await AssertProblemAsync(admin, 400, HttpMethod.Get, $"/admin/connections?{query}");
            }

            foreach (var query in (string[])["seconds=0", "seconds=-1", "seconds=301", "seconds=2147483648", "seconds=NaN", "seconds=1.5"])
            {
                await AssertProblemAsync(admin, 400, HttpMethod.Get, $"/admin/stats?{query}");
            }

            // Large but in range, and names in any case: answered.
            Assert.Equal(0, (await PageAsync(admin, "minIdleSeconds=1e300")).Num("total"));
            Assert.Equal(3, (await PageAsync(admin, "protocol=ECHO&limit=1000&offset=0")).Num("total"));
            Assert.Equal(0, (await PageAsync(admin, $"remote={new string('1', 4000)}")).Num("total"));
            Assert.Equal(3, (await PageAsync(admin, $"model={(prefork ? "prefork" : "kestrel")}&protocol=echo")).Num("total"));

            // Ids that are not ids: 404 problems (a worker index past int, a huge one, a sign, a long one).
            foreach (var id in (string[])["w2147483647-1", "w99999999999-1", "w-1-1", "w1-", new string('w', 4000)])
            {
                await AssertProblemAsync(admin, 404, HttpMethod.Get, $"/admin/connections/{id}");
                await AssertProblemAsync(admin, 404, HttpMethod.Delete, $"/admin/connections/{id}");
            }

            // After all that the listing is whole: every process still answers (a worker's failed answer once left
            // it deaf to every later request).
            var after = await PageAsync(admin, "protocol=echo&sort=-age");
            Assert.True(after.Num("total") == 3 && after.Items().Count() == 3, after.ToString());
            Assert.Empty(after.GetProperty("unansweredWorkers").EnumerateArray());
            Assert.DoesNotContain("unhandled exception", gateway.Output, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            echoes.ForEach(s => s.Dispose());
        }
    }

    [Fact]
    public async Task APreforkListingDeeperThanOneControlFrameIsAnsweredWholeAndTheWorkerServesOn()
    {
        // ~385 bytes a snapshot: 3,500 connections of one worker are more than the 1 MiB a control frame may carry.
        const int Count = 3500;
        await using var gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Echo:Model=prefork", "--Gateway:Workers:Count=1"]);
        using var admin = new AdminApi(gateway);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var echoes = new Socket?[Count];
        try
        {
            var worker = (await admin.GetJsonAsync("/admin/workers"))[0];
            await TcpClients.ConnectManyAsync(gateway.Echo, echoes, 64, timeout.Token);
            await admin.WaitForAsync("/admin/connections?limit=1", page => page.Num("total") == Count, TimeSpan.FromMinutes(2));

            var deep = await PageAsync(admin, $"offset={Count - 50}&limit=100&sort=remote");
            Assert.True(deep.Num("total") == Count && deep.Items().Count() == 50, $"total {deep.Num("total")}, {deep.Items().Count()} items, unanswered {deep.GetProperty("unansweredWorkers")}");
            var remotes = deep.Items().Select(c => c.Str("remote")).ToList();
            Assert.Equal(remotes.Order(StringComparer.Ordinal), remotes);
            var past = await PageAsync(admin, "offset=2147483647");
            Assert.True(past.Num("total") == Count && !past.Items().Any(), past.ToString());

            // The same worker process, never restarted, still holds and serves every connection.
            var now = (await admin.GetJsonAsync("/admin/workers"))[0];
            Assert.Equal((worker.Num("pid"), 0L), (now.Num("pid"), now.Num("restarts")));
            Assert.Equal(Count, (await PageAsync(admin, "limit=1")).Num("total"));
            var first = echoes[0]!;
            await first.SendAsync("ping"u8.ToArray(), SocketFlags.None);
            var buffer = new byte[4];
            for (var got = 0; got < 4;)
            {
                var n = await first.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None, timeout.Token);
                Assert.True(n > 0, "the worker closed the first connection");
                got += n;
            }

            Assert.Equal("ping"u8.ToArray(), buffer);
        }
        finally
        {
            foreach (var socket in echoes)
            {
                socket?.Dispose();
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ACloseReasonReachesTheLogAsOnePrintableBoundedLine(bool prefork)
    {
        await using var gateway = await GatewayProcess.StartAsync(Args(prefork));
        using var admin = new AdminApi(gateway);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo);
        var remote = echo.LocalEndPoint!.ToString()!;
        var id = (await admin.WaitForAsync($"/admin/connections?remote={remote}", page => page.Num("total") == 1, Patience)).Items().Single().Str("id");

        const string Forged = "12:00:00 crit: Gateway.Admin[1] forged: the API key is hunter2";
        var reason = "maintenance\r\n" + Forged + "\u001b[2J\u001b]0;owned\u0007 \u009b31m" + new string('x', 5000);
        var (status, _, body) = await SendAsync(admin, HttpMethod.Delete, $"/admin/connections/{id}?reason={Uri.EscapeDataString(reason)}");
        Assert.True(status == 202, $"DELETE: {status} {body}");
        var answered = JsonDocument.Parse(body).RootElement.Str("reason");
        Assert.True(answered.Length <= 200, $"the reason answered is {answered.Length} characters long");
        Assert.DoesNotContain(answered, c => char.IsControl(c));
        Assert.StartsWith("maintenance  12:00:00 crit: Gateway.Admin[1] forged", answered, StringComparison.Ordinal);

        Assert.True(await gateway.LogsAsync("by admin request: maintenance", Patience), gateway.Output);
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(echo, Patience));
        var output = gateway.Output;
        Assert.DoesNotContain(output.Split('\n'), line => line.StartsWith(Forged, StringComparison.Ordinal));
        Assert.DoesNotContain('\u001b', output);
        Assert.DoesNotContain('\u0007', output);
        Assert.DoesNotContain('\u009b', output);
        var logged = output.Split('\n').Single(line => line.Contains("by admin request: maintenance", StringComparison.Ordinal));
        Assert.Contains("maintenance  12:00:00 crit: Gateway.Admin[1] forged: the API key is hunter2?[2J?]0;owned? ?31mxxx", logged, StringComparison.Ordinal);
        Assert.True(logged.Length < 200 + 200, $"the logged line is {logged.Length} characters long: {logged}");
    }

    [Fact]
    public async Task WithoutAKeyOnLoopbackOnlyLoopbackHostNamesAreServed()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var admin = new AdminApi(gateway);
        var port = gateway.Admin.Port;

        // A DNS-rebinding page reaches 127.0.0.1 under its own name: refused on every path of the endpoint.
        foreach (var host in (string[])["evil.example", $"evil.example:{port}", $"127.0.0.1.nip.io:{port}", $"localhost.evil.example:{port}", $"10.0.0.1:{port}"])
        {
            foreach (var path in (string[])["/admin/connections", "/admin/workers", "/metrics", "/admin/ui/", "/swagger/v1/swagger.json", "/healthz", "/no-such-path"])
            {
                await AssertProblemAsync(admin, 421, HttpMethod.Get, path, host);
            }

            await AssertProblemAsync(admin, 421, HttpMethod.Delete, "/admin/connections/1", host);
        }

        // Loopback names, with a port or without, in any case: served.
        foreach (var host in (string[])["localhost", $"localhost:{port}", $"LocalHost:{port}", $"127.0.0.1:{port}", "127.0.0.1", $"127.8.9.10:{port}", $"[::1]:{port}", "[::1]"])
        {
            var (status, _, body) = await SendAsync(admin, HttpMethod.Get, "/admin/connections", host);
            Assert.True(status == 200, $"Host {host}: {status} {body}");
        }

        // curl, as an operator types it, and with a foreign Host.
        Assert.Equal("200", await CurlStatusAsync($"{gateway.Admin}admin/connections"));
        Assert.Equal("421", await CurlStatusAsync($"{gateway.Admin}admin/connections", "-H", "Host: evil.example"));
        Assert.True(await gateway.LogsAsync("not a loopback name", Patience), gateway.Output);
    }

    [Fact]
    public async Task WithoutAKeyACloseFromAnotherOriginIsRefusedAndOneFromTheAdminOriginOrWithoutOriginIsDone()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var admin = new AdminApi(gateway);
        var own = $"http://127.0.0.1:{gateway.Admin.Port}";
        using var first = await TcpClients.ConnectAsync(gateway.Echo);
        using var second = await TcpClients.ConnectAsync(gateway.Echo);
        using var third = await TcpClients.ConnectAsync(gateway.Echo);
        var ids = new List<string>();
        foreach (var socket in (Socket[])[first, second, third])
        {
            var page = await admin.WaitForAsync($"/admin/connections?remote={socket.LocalEndPoint}", p => p.Num("total") == 1, Patience);
            ids.Add(page.Items().Single().Str("id"));
        }

        foreach (var origin in (string[])["http://evil.example", $"http://evil.example:{gateway.Admin.Port}", "null", $"ftp://127.0.0.1:{gateway.Admin.Port}", $"http://127.0.0.1:{gateway.Admin.Port}, http://evil.example",
            "http://127.0.0.1", $"http://localhost:{gateway.Admin.Port + 1}", "not a url"])
        {
            await AssertProblemAsync(admin, 403, HttpMethod.Delete, $"/admin/connections/{ids[0]}?reason=csrf", origin: origin);
            await AssertProblemAsync(admin, 403, HttpMethod.Post, "/admin/connections", origin: origin);
            await AssertProblemAsync(admin, 403, HttpMethod.Put, $"/admin/connections/{ids[0]}", origin: origin);
            await AssertProblemAsync(admin, 403, HttpMethod.Patch, $"/admin/connections/{ids[0]}", origin: origin);
        }

        // Reading is not changing: a GET with a foreign Origin is answered (without CORS headers the page cannot read it).
        Assert.Equal(200, (await SendAsync(admin, HttpMethod.Get, "/admin/connections", origin: "http://evil.example")).Status);
        Assert.Equal("open", (await admin.GetJsonAsync($"/admin/connections/{ids[0]}")).Str("state"));

        // The dashboard's own fetch (same origin, by either loopback name) and curl (no Origin) close.
        Assert.Equal(202, (await SendAsync(admin, HttpMethod.Delete, $"/admin/connections/{ids[0]}", origin: own)).Status);
        Assert.Equal(202, (await SendAsync(admin, HttpMethod.Delete, $"/admin/connections/{ids[1]}", $"localhost:{gateway.Admin.Port}", $"http://localhost:{gateway.Admin.Port}")).Status);
        Assert.Equal("202", await CurlStatusAsync($"{gateway.Admin}admin/connections/{ids[2]}", "-X", "DELETE"));
        foreach (var socket in (Socket[])[first, second, third])
        {
            Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(socket, Patience));
        }
    }

    [Fact]
    public async Task WithAKeyAnyHostIsServedButACloseFromAnotherOriginIsStillRefused()
    {
        await using var gateway = await GatewayProcess.StartAsync([.. GatewayProcess.LoopbackArgs, $"--Gateway:Admin:ApiKey={Key}"]);
        using var admin = new AdminApi(gateway, Key);
        using var echo = await TcpClients.ConnectAsync(gateway.Echo);
        var id = (await admin.WaitForAsync($"/admin/connections?remote={echo.LocalEndPoint}", p => p.Num("total") == 1, Patience)).Items().Single().Str("id");

        // The key is the protection: any Host is served to whoever has it (a proxy, a port-forward by name).
        Assert.Equal(200, (await SendAsync(admin, HttpMethod.Get, "/admin/connections", "gateway.internal:8080")).Status);
        await AssertProblemAsync(admin, 403, HttpMethod.Delete, $"/admin/connections/{id}", origin: "http://evil.example");
        Assert.Equal("open", (await admin.GetJsonAsync($"/admin/connections/{id}")).Str("state"));
        Assert.Equal(202, (await SendAsync(admin, HttpMethod.Delete, $"/admin/connections/{id}")).Status);
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(echo, Patience));
    }

    /// <summary>curl's status code for a request (curl sends no Origin).</summary>
    private static async Task<string> CurlStatusAsync(string url, params string[] options)
    {
        var start = new ProcessStartInfo("curl") { UseShellExecute = false };
        foreach (var argument in (string[])["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30", .. options, url])
        {
            start.ArgumentList.Add(argument);
        }

        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(start);
        Assert.True(code == 0, $"curl {url}: exit {code} {stderr}");
        return stdout.Trim();
    }
}
