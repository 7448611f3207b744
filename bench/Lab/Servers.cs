using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Lab;

/// <summary>
/// One way to run the gateway: an I/O model and its settings, and how much it can be asked to hold — the
/// comparison runs every model on every scenario it can serve, and says so where it cannot.
/// </summary>
/// <param name="Name">The model as the report names it.</param>
/// <param name="Settings">Gateway settings that select it.</param>
/// <param name="MaxConnections">Connections (active plus idle) it can serve at once; beyond, the scenario is skipped.</param>
/// <param name="Warmup">Warm-up for its runs (a process per connection takes a while to start).</param>
internal sealed record ModelConfig(string Name, string[] Settings, int MaxConnections, int Warmup = 0)
{
    public const int Unbounded = int.MaxValue;

    /// <summary>Every model of the design, in the report's order.</summary>
    public static IReadOnlyList<ModelConfig> All(int workers) =>
    [
        Model("kestrel", Unbounded),
        Model("epoll", Unbounded),
        Model("epoll-et", Unbounded),
        Model("poll", Unbounded),
        // select(2) watches descriptors below FD_SETSIZE (1024) only, and the gateway holds about 250 of its own
        // (the runtime keeps two per loaded assembly open): at 800, 776 idle left the last 4 active clients none.
        Model("select", 760),
        // Two threads per connection (a reader and a writer); 2000 connections = 4000 threads.
        Model("threads", 2000),
        Model("iterative", 1),
        new("prefork", Prefork("async", workers), Unbounded),
        new("prefork-sync", Prefork("sync", workers), workers),
        // A .NET process per connection (~0.5 s of CPU to start, ~30 MB each).
        new("prefork-per-connection", Prefork("per-connection", workers), 16, Warmup: 5),
    ];

    private static ModelConfig Model(string name, int max) => new(name, [$"--Gateway:Listeners:Rpc:Model={name}", $"--Gateway:Listeners:Echo:Model={name}"], max);

    public static string[] Prefork(string mode, int workers) =>
    [
        "--Gateway:Listeners:Rpc:Model=prefork", "--Gateway:Listeners:Echo:Model=prefork",
        $"--Gateway:Workers:Mode={mode}", $"--Gateway:Workers:Count={workers}",
    ];

    public bool Serves(int connections) => connections <= MaxConnections;
}

/// <summary>Starts the servers of the comparison on free loopback ports and knows when each is ready.</summary>
internal sealed class Servers(LabOptions options)
{
    public string GatewayDll => Path.Combine(options.Root, "src/Gateway/bin/Release/net10.0/Gateway.dll");

    /// <summary>A gateway on one model, RPC, echo and admin on loopback, FTP off.</summary>
    public async Task<(ServerProcess Server, int Rpc, int Echo)> StartGatewayAsync(ModelConfig model, string? cpus, params string[] extra)
    {
        var (rpc, echo, admin) = (ServerProcess.FreePort(), ServerProcess.FreePort(), ServerProcess.FreePort());
        string[] arguments =
        [
            GatewayDll,
            "--Gateway:Listeners:Rpc:Address=127.0.0.1", $"--Gateway:Listeners:Rpc:Port={rpc}",
            "--Gateway:Listeners:Echo:Address=127.0.0.1", $"--Gateway:Listeners:Echo:Port={echo}",
            "--Gateway:Listeners:Ftp:Enabled=false", $"--Gateway:Admin:Url=http://127.0.0.1:{admin}",
            "--Gateway:Limits:MaxConnections=250000", "--Gateway:Limits:IdleTimeoutSeconds=3600",
            "--Logging:LogLevel:Default=Warning",
            .. model.Settings, .. extra,
        ];
        var server = ServerProcess.Start($"gateway ({model.Name})", "dotnet", arguments, cpus,
            options.Profile ? new Dictionary<string, string>(Profile.ServerEnvironment) : null);
        try
        {
            // Ready as an orchestrator sees it (/readyz: a prefork pool's every worker has started) and answering.
            await server.WaitReadyAsync(async () => await IsReadyAsync(admin) && await PingsAsync(rpc), TimeSpan.FromSeconds(60));
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }

        return (server, rpc, echo);
    }

    public static async Task<(ServerProcess Server, int Port)> StartRedisAsync(string? cpus)
    {
        var port = ServerProcess.FreePort();
        var server = ServerProcess.Start("redis-server", "redis-server",
            ["--port", $"{port}", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no",
             "--maxclients", "250000", "--daemonize", "no", "--loglevel", "warning"], cpus);
        await server.WaitReadyAsync(() => RedisPongsAsync(port), TimeSpan.FromSeconds(20));
        return (server, port);
    }

    public static async Task<(ServerProcess Server, int Port)> StartIperfAsync(string? cpus)
    {
        var port = ServerProcess.FreePort();
        var server = ServerProcess.Start("iperf3", "iperf3", ["-s", "-B", "127.0.0.1", "-p", $"{port}"], cpus);
        await Task.Delay(300); // a probe connection would count as a failed test in its log; it starts in milliseconds
        await server.WaitReadyAsync(() => Task.FromResult(!server.HasExited), TimeSpan.FromSeconds(10));
        return (server, port);
    }

    private static async Task<bool> IsReadyAsync(int adminPort)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await http.GetAsync(new Uri($"http://127.0.0.1:{adminPort}/readyz"));
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    /// <summary>Whether the RPC port answers a ping (a prefork pool accepts into its backlog before a worker serves).</summary>
    private static async Task<bool> PingsAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        var body = "{\"in\":\"ping\",\"params\":\"x\"}"u8.ToArray();
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        await socket.SendAsync(frame, SocketFlags.None, timeout.Token);
        var header = new byte[4];
        return await ReadExactlyAsync(socket, header, timeout.Token) && BinaryPrimitives.ReadUInt32LittleEndian(header) > 0;
    }

    private static async Task<bool> RedisPongsAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        await socket.SendAsync("PING\r\n"u8.ToArray(), SocketFlags.None, timeout.Token);
        var reply = new byte[7];
        return await ReadExactlyAsync(socket, reply, timeout.Token) && Encoding.ASCII.GetString(reply) == "+PONG\r\n";
    }

    private static async Task<bool> ReadExactlyAsync(Socket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        for (var filled = 0; filled < buffer.Length;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None, cancellationToken);
            if (n == 0)
            {
                return false;
            }

            filled += n;
        }

        return true;
    }
}
