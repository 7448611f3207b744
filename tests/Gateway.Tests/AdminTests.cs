using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Gateway.Tests;

/// <summary>The admin API against a real gateway with an API key; each test makes its own connections.</summary>
public sealed class AdminTests : IAsyncLifetime, IDisposable
{
    private const string Key = "test-admin-key-7f3a";
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);
    private GatewayProcess _gateway = null!;
    private AdminApi _admin = null!;

    public async Task InitializeAsync()
    {
        _gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, $"--Gateway:Admin:ApiKey={Key}", "--Gateway:Admin:CloseGraceSeconds=2"]);
        _admin = new AdminApi(_gateway, Key);
    }

    public async Task DisposeAsync() => await _gateway.DisposeAsync();

    public void Dispose() => _admin?.Dispose();

    /// <summary>An echo connection that has sent and read back <paramref name="bytes"/> bytes.</summary>
    private async Task<Socket> EchoClientAsync(int bytes)
    {
        var socket = await TcpClients.ConnectAsync(_gateway.Echo);
        await socket.SendAsync(new byte[bytes], SocketFlags.None);
        var buffer = new byte[bytes];
        for (var got = 0; got < bytes;)
        {
            got += await socket.ReceiveAsync(buffer.AsMemory(got), SocketFlags.None);
        }

        return socket;
    }

    private static string RemoteOf(Socket client) => client.LocalEndPoint!.ToString()!;

    [Fact]
    public async Task AdminRequestsNeedTheKeyAndAnswer401ProblemsWithoutIt()
    {
        using var anonymous = new AdminApi(_gateway);
        using var wrong = new AdminApi(_gateway, "not-the-key");
        foreach (var client in new[] { anonymous, wrong })
        {
            using var response = await client.Http.GetAsync(new Uri("/admin/connections", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            Assert.Equal(401, problem.GetProperty("status").GetInt32());
        }

        Assert.Equal(200, (await _admin.SendAsync(HttpMethod.Get, "/admin/listeners")).Status);
        anonymous.Http.DefaultRequestHeaders.Authorization = new("Bearer", Key);
        Assert.Equal(200, (await anonymous.SendAsync(HttpMethod.Get, "/admin/workers")).Status);
        Assert.DoesNotContain(Key, _gateway.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/healthz")]
    [InlineData("/readyz")]
    [InlineData("/metrics")]
    [InlineData("/swagger/v1/swagger.json")]
    [InlineData("/swagger/index.html")]
    public async Task OperationalEndpointsAreOpenWithoutTheKey(string path)
    {
        using var anonymous = new AdminApi(_gateway);
        using var response = await anonymous.Http.GetAsync(new Uri(path, UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task ListingShowsALiveEchoClientWithItsPortsAndByteCounts()
    {
        using var client = await EchoClientAsync(1234);
        var remote = RemoteOf(client);
        var page = await _admin.WaitForAsync($"/admin/connections?remote={remote}",
            p => p.Items().Any(i => i.Num("bytesIn") == 1234 && i.Num("bytesOut") == 1234));
        var item = Assert.Single(page.Items());
        Assert.Equal(1, page.Num("total"));
        Assert.Equal(("echo", "kestrel", "open", remote), (item.Str("protocol"), item.Str("model"), item.Str("state"), item.Str("remote")));
        Assert.Equal(_gateway.Echo.Port, item.GetProperty("listener").GetInt32());
        Assert.Equal(_gateway.Echo.ToString(), item.Str("local"));
        Assert.Equal(JsonValueKind.Null, item.GetProperty("worker").ValueKind);

        var one = await _admin.GetJsonAsync($"/admin/connections/{item.Str("id")}");
        Assert.Equal(remote, one.Str("remote"));
        Assert.Equal(404, (await _admin.SendAsync(HttpMethod.Get, "/admin/connections/no-such-id")).Status);
    }

    [Fact]
    public async Task RpcRequestsAreCountedAsMessages()
    {
        await using var rpc = await RpcConnection.OpenAsync(_gateway.Rpc);
        for (var i = 0; i < 3; i++)
        {
            await rpc.Client.CallAsync("ping", i);
        }

        var remote = RemoteOf(rpc.Socket);
        await _admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Items().Single().Num("messages") == 3);
    }

    [Fact]
    public async Task DeleteClosesTheConnectionTheClientSeesEofAndTheRecordLeaves()
    {
        using var client = await EchoClientAsync(10);
        var page = await _admin.WaitForAsync($"/admin/connections?remote={RemoteOf(client)}", p => p.Num("total") == 1);
        var id = page.Items().Single().Str("id");

        var (status, body) = await _admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}?reason=tests%20say%20so");
        Assert.Equal(202, status);
        Assert.Equal(("closing", "tests say so"), (body.Str("state"), body.Str("reason")));

        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(client, Patience));
        await _admin.WaitForAsync($"/admin/connections?remote={RemoteOf(client)}", p => p.Num("total") == 0);
        Assert.Equal(404, (await _admin.SendAsync(HttpMethod.Get, $"/admin/connections/{id}")).Status);
        Assert.Equal(404, (await _admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}")).Status);
        Assert.True(await _gateway.LogsAsync("by admin request: tests say so", Patience), _gateway.Output);
        Assert.Contains("gateway_connections_closed_by_admin_total{", await _admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative)), StringComparison.Ordinal);
    }

    [Fact]
    public async Task DeleteLetsTheRequestInProgressFinishFirst()
    {
        await using var rpc = await RpcConnection.OpenAsync(_gateway.Rpc);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping")).Out);
        rpc.Client.Send("sleep", 700, "in-progress");
        await rpc.Client.FlushAsync();
        var id = (await _admin.WaitForAsync($"/admin/connections?remote={RemoteOf(rpc.Socket)}", p => p.Num("total") == 1)).Items().Single().Str("id");
        await Task.Delay(200);

        Assert.Equal(202, (await _admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}")).Status);
        var reply = await rpc.Client.ReceiveAsync();
        Assert.Equal(("sleep", "in-progress"), (reply?.Out, reply?.Id?.GetString()));
        Assert.Null(await rpc.Client.ReceiveAsync());
    }

    [Fact]
    public async Task DeleteAbortsAConnectionThatOutlastsTheGracePeriod()
    {
        await using var rpc = await RpcConnection.OpenAsync(_gateway.Rpc);
        Assert.Equal("pong", (await rpc.Client.CallAsync("ping")).Out);
        rpc.Client.Send("sleep", 10_000);
        await rpc.Client.FlushAsync();
        var id = (await _admin.WaitForAsync($"/admin/connections?remote={RemoteOf(rpc.Socket)}", p => p.Num("total") == 1)).Items().Single().Str("id");

        var stopwatch = Stopwatch.StartNew();
        Assert.Equal(202, (await _admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}")).Status);
        // Grace is 2 s here: the 10 s sleep is cut off, the client sees the connection end without a reply.
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(rpc.Socket, TimeSpan.FromSeconds(9)));
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(9), $"closed after {stopwatch.Elapsed}");
    }

    [Fact]
    public async Task ListenersReportTheirPortsModelAndCounters()
    {
        using var client = await EchoClientAsync(50);
        var listeners = await _admin.WaitForAsync("/admin/listeners",
            l => l.EnumerateArray().Any(x => x.Str("protocol") == "echo" && x.Num("active") >= 1 && x.Num("bytesIn") >= 50));
        var echo = listeners.EnumerateArray().Single(x => x.Str("protocol") == "echo");
        var rpc = listeners.EnumerateArray().Single(x => x.Str("protocol") == "rpc");
        Assert.Equal((_gateway.Echo.Port, _gateway.Rpc.Port), (echo.GetProperty("port").GetInt32(), rpc.GetProperty("port").GetInt32()));
        Assert.Equal("kestrel", echo.Str("model"));
        Assert.True(echo.Num("accepted") >= 1);
        Assert.Equal(0, echo.Num("rejected"));
    }

    [Fact]
    public async Task WorkersIsAnEmptyListWithoutAPool()
    {
        var workers = await _admin.GetJsonAsync("/admin/workers");
        Assert.Equal(JsonValueKind.Array, workers.ValueKind);
        Assert.Equal(0, workers.GetArrayLength());
    }

    [Fact]
    public async Task OpenApiDocumentListsEveryAdminPathAndTheKeyScheme()
    {
        var document = await _admin.GetJsonAsync("/swagger/v1/swagger.json");
        var paths = document.GetProperty("paths");
        foreach (var (path, method) in new[]
        {
            ("/admin/connections", "get"), ("/admin/connections/{id}", "get"), ("/admin/connections/{id}", "delete"),
            ("/admin/listeners", "get"), ("/admin/workers", "get"), ("/admin/stats", "get"), ("/healthz", "get"), ("/readyz", "get"),
        })
        {
            var operation = paths.GetProperty(path).GetProperty(method);
            Assert.False(string.IsNullOrEmpty(operation.Str("summary")), $"{method} {path} has no summary");
            Assert.True(operation.GetProperty("responses").TryGetProperty("200", out _) || operation.GetProperty("responses").TryGetProperty("202", out _));
            Assert.Equal(path.StartsWith("/admin", StringComparison.Ordinal), operation.TryGetProperty("security", out _));
        }

        var parameters = paths.GetProperty("/admin/connections").GetProperty("get").GetProperty("parameters").EnumerateArray().Select(p => p.Str("name"));
        Assert.Equal(["protocol", "model", "remote", "minIdleSeconds", "sort", "offset", "limit"], parameters);
        var scheme = document.GetProperty("components").GetProperty("securitySchemes").GetProperty("ApiKey");
        Assert.Equal(("apiKey", "X-Api-Key", "header"), (scheme.Str("type"), scheme.Str("name"), scheme.Str("in")));
    }
}
