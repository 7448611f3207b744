using System.Diagnostics;
using System.Globalization;

namespace Gateway.Lab;

/// <summary>
/// The scenarios of the comparison, each run on every model that can serve it, with the anchors (Redis,
/// iperf3, vsftpd) measured in the same run. Servers are pinned to CPU 0 and LoadGen to CPU 1 except in the
/// CPU-bound scenario, which asks how a design uses every core.
/// </summary>
internal sealed partial class Comparison(LabOptions options, Servers servers, Load load)
{
    public const int Workers = 2;
    public const int WorkRounds = 3000;

    /// <summary>Scenario 1's connection counts.</summary>
    public static readonly int[] PingConnections = [1, 16, 256, 4096];

    /// <summary>Scenario 4's idle connection counts (beside 4 active clients).</summary>
    public static readonly int[] IdleCounts = [10, 100, 1000, 10000];

    private const int IdleActive = 4;

    public List<Row> Rows { get; } = [];

    /// <summary>The goal cells' runs, one per model and round.</summary>
    public List<Row> RoundRows { get; } = [];

    /// <summary>Each fresh server's replies per second from its first request, per model and round.</summary>
    public List<WarmupCurve> Warmups { get; } = [];

    public Calibration? Calibration { get; private set; }

    private IEnumerable<ModelConfig> Models => ModelConfig.All(Workers).Where(options.Includes);

    private static void Progress(string message) =>
        Console.Error.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {message}");

    private void Add(Row row, List<Row>? into = null)
    {
        (into ?? Rows).Add(row);
        var figure = row.Note is { } note && !row.HasFigure ? note
            : $"{row.Rps:0} req/s  {row.Mbps:0.#} Mb/s  p50 {row.P50Us:0} us  p99 {row.P99Us:0} us  cpu {row.CpuUsPerRequest:0.0} us/req  cs {row.ContextSwitchesPerRequest:0.00}/req  rss {row.ServerRssMb:0} MB{(row.Note is null ? "" : $"  ({row.Note})")}";
        Progress($"  {row.Scenario,-10} {row.Model,-24} c={row.Connections,-5} p={row.Pipeline,-3} idle={row.Idle,-6} {(row.Round is { } round ? $"round {round} " : "")}{figure}");
    }

    /// <summary>Whether the matrix already has this cell (measured in the goal rounds).</summary>
    private bool Has(string model, string scenario, int connections) =>
        Rows.Any(r => r.Model == model && r.Scenario == scenario && r.Connections == connections);

    private void Skip(string model, string scenario, int connections, string why, int pipeline = 1, int idle = 0) =>
        Add(new Row(model, scenario) { Connections = connections, Pipeline = pipeline, Idle = idle, Note = why });

    /// <summary>One cell measured (<see cref="CellAsync"/>) and added to the matrix; null when it has no figure.</summary>
    private async Task<Row?> MeasureAsync(string model, string scenario, ServerProcess server, string? cpus, int warmup, int idle, string? note, params string[] arguments) =>
        await MeasureIntoAsync(Rows, null, model, scenario, server, cpus, warmup, idle, note, arguments);

    /// <summary>One cell measured and added to <paramref name="into"/>; a server that died on it fails the scenario.</summary>
    private async Task<Row?> MeasureIntoAsync(List<Row> into, int? round, string model, string scenario, ServerProcess server, string? cpus, int warmup, int idle, string? note, string[] arguments)
    {
        var row = await CellAsync(model, scenario, server, cpus, warmup, idle, note, arguments) with { Round = round };
        Add(row, into);
        if (!row.HasFigure && server.HasExited)
        {
            throw new InvalidOperationException($"{server.Name} exited during {scenario} ({row.Note}):\n{server.Log}");
        }

        return row.HasFigure ? row : null;
    }

    /// <summary>
    /// One cell: a LoadGen run, and once more on the same server when the rate had not settled by the end of the
    /// warm-up (its last second not within <see cref="LoadResult.SettledWithin"/> of the measured window's rate), the
    /// row saying so. A run that fails (a model that crashes, descriptors that run out) is a row that says so, and
    /// the scenario goes on.
    /// </summary>
    private async Task<Row> CellAsync(string model, string scenario, ServerProcess server, string? cpus, int warmup, int idle, string? note, string[] arguments)
    {
        try
        {
            // The profile's name: scenario, model and LoadGen's arguments but the port (which differs every run).
            var label = string.Join('-', [scenario, model, .. arguments.Where((a, i) => a != "--port" && (i == 0 || arguments[i - 1] != "--port")).Select(a => a.TrimStart('-'))]);
            var first = await load.RunAsync(server, cpus, warmup, label, arguments);
            var result = first.Settled ? first : await load.RunAsync(server, cpus, warmup, label, arguments);
            string? settling = (first.Settled, result.Settled) switch
            {
                (true, _) => null,
                (false, true) => $"measured twice: the first run's last warm-up second was at {first.Settling:0.00} of its rate",
                (false, false) => $"not settled: the last warm-up second at {first.Settling:0.00}, then {result.Settling:0.00} of the rate",
            };
            return result.ToRow(model, scenario, idle, note is null ? settling : settling is null ? note : $"{note}; {settling}");
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or System.Text.Json.JsonException)
        {
            var connections = Array.IndexOf(arguments, "--connections") is >= 0 and var at ? int.Parse(arguments[at + 1], CultureInfo.InvariantCulture) : 0;
            return new Row(model, scenario) { Connections = connections, Idle = idle, Note = $"failed: {e.Message.Split('\n')[0]}" };
        }
    }

    private async Task WithGatewayAsync(ModelConfig model, string? cpus, Func<ServerProcess, int, int, Task> body, params string[] extra)
    {
        var (server, rpc, echo) = await servers.StartGatewayAsync(model, cpus, extra);
        await using (server)
        {
            await body(server, rpc, echo);
        }
    }

    private async Task WithRedisAsync(Func<ServerProcess, int, Task> body) => await WithRedisAsync(options.ServerCpus, body);

    private static async Task WithRedisAsync(string? cpus, Func<ServerProcess, int, Task> body)
    {
        var (server, port) = await Servers.StartRedisAsync(cpus);
        await using (server)
        {
            await body(server, port);
        }
    }

    /// <summary>LoadGen's resp PING against redis-benchmark's ping_inline on the same Redis, 16 connections.</summary>
    public async Task CalibrateAsync()
    {
        Progress("calibration: LoadGen against redis-benchmark, PING at 16 connections");
        await WithRedisAsync(async (redis, port) =>
        {
            var ours = await load.RunAsync(redis, options.LoadCpus, 0, "calibration-redis", "--port", $"{port}", "--protocol", "resp", "--connections", "16");
            var requests = Math.Max(100_000, (long)(ours.Get("rps") * options.Seconds));
            var theirs = await RedisBenchmarkAsync(port, 16, requests);
            Calibration = new Calibration(ours.Get("rps"), theirs, 16);
            Progress($"  LoadGen {ours.Get("rps"):0}/s, redis-benchmark {theirs:0}/s: {Calibration.Ratio:0.00}");
        });
    }

    private async Task<double> RedisBenchmarkAsync(int port, int connections, long requests)
    {
        var output = await Pinned.OutputAsync(Pinned.Command(options.LoadCpus, "redis-benchmark",
            ["-p", $"{port}", "-c", $"{connections}", "-n", $"{requests}", "-t", "ping_inline", "--csv"]));
        // "test","rps",... then "PING_INLINE","123456.78",...
        var line = output.Split('\n').First(l => l.StartsWith("\"PING_INLINE\"", StringComparison.Ordinal));
        return double.Parse(line.Split(',')[1].Trim('"'), CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// The goal cells in interleaved rounds: Redis, then every model that serves 16 connections, then all again,
    /// a fresh server per model and round that serves the round's cells one after the other. Its first run, RPC
    /// ping at 16 connections without warm-up, is its warm-up curve; then RPC ping at 16 and 1 connections,
    /// pipelined 16 × 16 and echo 64 B, as the chosen scenarios have them (Redis: its PING). Each cell's median
    /// round goes into the matrix, which then does not measure it again; the goals take a ratio per round.
    /// </summary>
    public async Task GoalRoundsAsync()
    {
        var models = Models.Where(m => m.Serves(16) && m.Warmup == 0).ToList();
        for (var round = 1; round <= options.Rounds; round++)
        {
            Progress($"goal rounds: round {round} of {options.Rounds} (redis, {string.Join(", ", models.Select(m => m.Name))}), a fresh server each");
            var number = round;
            await WithRedisAsync((redis, port) => RoundAsync("redis", redis, number, port, echo: null, "resp"));
            foreach (var model in models)
            {
                await WithGatewayAsync(model, options.ServerCpus, (server, rpc, echo) => RoundAsync(model.Name, server, number, rpc, echo, "rpc"));
            }
        }

        foreach (var cell in RoundRows.Where(r => r.HasFigure).GroupBy(r => (r.Model, r.Scenario, r.Connections)))
        {
            var median = cell.OrderBy(r => r.Rps).ElementAt((cell.Count() - 1) / 2);
            var how = cell.Count() == 1 ? "measured in the goal round" : $"the median of {cell.Count()} interleaved rounds: round {median.Round}";
            Add(median with { Round = null, Note = median.Note is null ? how : $"{how}; {median.Note}" });
        }
    }

    /// <summary>One model's part of a round on its fresh <paramref name="server"/>: the warm-up curve, then the goal cells.</summary>
    private async Task RoundAsync(string model, ServerProcess server, int round, int port, int? echo, string protocol)
    {
        var curve = await load.RunAsync(server, options.LoadCpus, 0, $"warmup-{model}",
            "--port", $"{port}", "--protocol", protocol, "--connections", "16", "--warmup", "0", "--duration", $"{options.WarmupCurveSeconds}");
        Progress($"  warm-up    {model,-24} round {round}: {string.Join(' ', curve.Timeline.Select(s => $"{s / 1000:0.#}k"))} replies/s from the first request");
        // RPC ping at 16 connections first: the steady rate the curve is read against.
        if (await MeasureIntoAsync(RoundRows, round, model, "ping", server, options.LoadCpus, 0, 0, null, ["--port", $"{port}", "--protocol", protocol, "--connections", "16"]) is { } steady)
        {
            Warmups.Add(new WarmupCurve(model, round, curve.Timeline, steady.Rps));
        }

        var cells = new List<(string Scenario, string[] Arguments)>();
        if (options.Runs("ping"))
        {
            cells.Add(("ping", ["--port", $"{port}", "--protocol", protocol, "--connections", "1"]));
        }

        if (options.Runs("pipelined"))
        {
            cells.Add(("pipelined", ["--port", $"{port}", "--protocol", protocol, "--connections", "16", "--pipeline", "16"]));
        }

        if (options.Runs("echo") && echo is { } echoPort)
        {
            cells.Add(("echo-64", ["--port", $"{echoPort}", "--protocol", "echo", "--message-bytes", "64", "--connections", "16"]));
        }

        foreach (var (scenario, arguments) in cells)
        {
            await MeasureIntoAsync(RoundRows, round, model, scenario, server, options.LoadCpus, 0, 0, null, arguments);
        }
    }

    /// <summary>1. RPC ping, one request in flight, at 1 to 4096 connections; Redis PING beside it.</summary>
    public async Task PingAsync()
    {
        Progress("scenario 1: RPC ping, 1 in flight");
        foreach (var model in Models)
        {
            await WithGatewayAsync(model, options.ServerCpus, async (server, rpc, _) =>
            {
                foreach (var connections in PingConnections)
                {
                    if (!model.Serves(connections))
                    {
                        Skip(model.Name, "ping", connections, $"serves at most {model.MaxConnections} at once");
                        continue;
                    }

                    if (Has(model.Name, "ping", connections))
                    {
                        continue;
                    }

                    await MeasureAsync(model.Name, "ping", server, options.LoadCpus, WarmupFor(model, connections), 0, null, "--port", $"{rpc}", "--connections", $"{connections}");
                }
            });
        }

        await WithRedisAsync(async (redis, port) =>
        {
            foreach (var connections in PingConnections.Where(c => !Has("redis", "ping", c)))
            {
                await MeasureAsync("redis", "ping", redis, options.LoadCpus, 0, 0, null, "--port", $"{port}", "--protocol", "resp", "--connections", $"{connections}");
            }
        });
    }

    /// <summary>A process per connection takes about half a second of CPU to start; a batch of them, longer.</summary>
    private static int WarmupFor(ModelConfig model, int connections) => model.Warmup == 0 ? 0 : model.Warmup + connections;

    /// <summary>2. RPC ping pipelined, 16 in flight on each of 16 connections; Redis pipelined beside it.</summary>
    public async Task PipelinedAsync()
    {
        Progress("scenario 2: RPC ping pipelined (16 x 16)");
        foreach (var model in Models)
        {
            if (!model.Serves(16))
            {
                Skip(model.Name, "pipelined", 16, $"serves at most {model.MaxConnections} at once", pipeline: 16);
                continue;
            }

            if (Has(model.Name, "pipelined", 16))
            {
                continue;
            }

            await WithGatewayAsync(model, options.ServerCpus, (server, rpc, _) =>
                MeasureAsync(model.Name, "pipelined", server, options.LoadCpus, WarmupFor(model, 16), 0, null, "--port", $"{rpc}", "--connections", "16", "--pipeline", "16"));
        }

        if (!Has("redis", "pipelined", 16))
        {
            await WithRedisAsync((redis, port) =>
                MeasureAsync("redis", "pipelined", redis, options.LoadCpus, 0, 0, null, "--port", $"{port}", "--protocol", "resp", "--connections", "16", "--pipeline", "16"));
        }
    }

    /// <summary>3. Echo: 64-byte messages on 16 connections, and one 64 KiB bulk stream; iperf3 beside the bulk figure.</summary>
    public async Task EchoAsync()
    {
        Progress("scenario 3: echo 64 B (16 connections) and 64 KiB bulk (1 connection)");
        foreach (var model in Models)
        {
            await WithGatewayAsync(model, options.ServerCpus, async (server, _, echo) =>
            {
                var connections = Math.Min(16, model.MaxConnections);
                if (!Has(model.Name, "echo-64", connections))
                {
                    await MeasureAsync(model.Name, "echo-64", server, options.LoadCpus, WarmupFor(model, connections), 0,
                        connections < 16 ? $"{connections} connection(s): all it serves at once" : null,
                        "--port", $"{echo}", "--protocol", "echo", "--message-bytes", "64", "--connections", $"{connections}");
                }

                await MeasureAsync(model.Name, "echo-bulk", server, options.LoadCpus, WarmupFor(model, 1), 0, null,
                    "--port", $"{echo}", "--protocol", "echo", "--message-bytes", "65536", "--connections", "1");
            });
        }

        var (iperf, port) = await Servers.StartIperfAsync(options.ServerCpus);
        await using (iperf)
        {
            Add(await IperfAsync(iperf, port));
        }
    }

    private async Task<Row> IperfAsync(ServerProcess server, int port)
    {
        var before = server.Usage();
        var output = await Pinned.OutputAsync(Pinned.Command(options.LoadCpus, "iperf3", ["-c", "127.0.0.1", "-p", $"{port}", "-t", $"{options.Seconds}", "-J"]));
        using var json = System.Text.Json.JsonDocument.Parse(output);
        var bits = json.RootElement.GetProperty("end").GetProperty("sum_received").GetProperty("bits_per_second").GetDouble();
        return new Row("iperf3", "echo-bulk")
        {
            Connections = 1,
            MessageBytes = 131072,
            Mbps = Math.Round(bits / 1e6, 1),
            ServerCpuS = Math.Round(server.Usage().Since(before).CpuSeconds, 2),
            ServerRssMb = Math.Round(server.RssBytes() / 1048576.0, 1),
            Note = "one stream, one direction (echo carries every byte both ways)",
        };
    }

    /// <summary>
    /// 4 and 5. Four active RPC clients among N idle connections: latency as N grows (the seeds: select and poll
    /// degrade linearly, epoll does not), and the server's memory per idle connection.
    /// </summary>
    public async Task IdleAsync()
    {
        Progress($"scenarios 4 and 5: {IdleActive} active clients among N idle; memory per idle connection");
        var counts = options.Quick ? IdleCounts : [.. IdleCounts, 100_000];
        foreach (var model in Models)
        {
            if (!model.Serves(IdleActive + IdleCounts[0]) || model.Warmup > 0)
            {
                Skip(model.Name, "idle", IdleActive, model.Warmup > 0 ? "a process per idle connection: not a way to hold idle clients"
                    : $"serves at most {model.MaxConnections} at once");
                continue;
            }

            // Up to its limit: the counts it can hold, then as many as it can (select: FD_SETSIZE).
            var held = counts.Where(n => model.Serves(IdleActive + n)).ToList();
            if (held.Count < counts.Length && model.MaxConnections - IdleActive - 20 > held[^1])
            {
                held.Add(model.MaxConnections - IdleActive - 20);
            }

            var measured = new List<Row>();
            await WithGatewayAsync(model, options.ServerCpus, async (server, rpc, _) =>
            {
                foreach (var idle in held)
                {
                    // The full run holds 100k idle on the event-loop models of the issue only (epoll, kestrel).
                    if (idle > 10_000 && model.Name is not ("epoll" or "kestrel"))
                    {
                        continue;
                    }

                    if (await IdleAsync(model.Name, server, rpc, "rpc", idle) is { } row)
                    {
                        measured.Add(row);
                    }
                }
            });
            AddMemory(model.Name, measured);
        }

        await QuietMemoryAsync();
        if (!options.Quick && Models.Any(m => m.Name == "prefork"))
        {
            await CrowdAsync();
        }

        var redis = new List<Row>();
        await WithRedisAsync(async (server, port) =>
        {
            foreach (var idle in counts)
            {
                if (await IdleAsync("redis", server, port, "resp", idle) is { } row)
                {
                    redis.Add(row);
                }
            }
        });
        AddMemory("redis", redis);
    }

    /// <summary>One idle-scaling run, unless the descriptor limit cannot hold it (then a row says so).</summary>
    private async Task<Row?> IdleAsync(string model, ServerProcess server, int port, string protocol, int idle)
    {
        if (FileLimit() is var limit && limit < idle + IdleActive + 1000)
        {
            Skip(model, "idle", IdleActive, $"needs {idle + IdleActive + 1000} descriptors; RLIMIT_NOFILE is {limit} (bench/run raises it only as far as the hard limit allows)", idle: idle);
            return null;
        }

        return await MeasureAsync(model, "idle", server, options.LoadCpus, 0, idle, null,
            "--port", $"{port}", "--protocol", protocol, "--connections", $"{IdleActive}", "--idle", $"{idle}");
    }

    /// <summary>This process's descriptor limit (LoadGen and the servers inherit it).</summary>
    private static long FileLimit()
    {
        var line = File.ReadAllLines("/proc/self/limits").FirstOrDefault(l => l.StartsWith("Max open files", StringComparison.Ordinal));
        var words = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
        return words.Length > 3 && long.TryParse(words[3], CultureInfo.InvariantCulture, out var soft) ? soft : long.MaxValue;
    }

    /// <summary>Memory per idle connection: the growth of peak RSS from the fewest idle connections to each larger count.</summary>
    private void AddMemory(string model, List<Row> measured)
    {
        if (measured.Count < 2)
        {
            return;
        }

        // Only runs that held every connection to the end: a partial one says nothing about memory.
        measured = [.. measured.Where(r => r.Rps > 0 && !r.Partial)];
        if (measured.Count < 2)
        {
            return;
        }

        var baseline = measured[0];
        foreach (var row in measured.Skip(1).Where(r => r.Idle >= 500))
        {
            var kib = (row.ServerRssMb - baseline.ServerRssMb) * 1024 / (row.Idle - baseline.Idle);
            Add(new Row(model, "memory")
            {
                Connections = baseline.Connections,
                Idle = row.Idle,
                ServerRssMb = row.ServerRssMb,
                KibPerIdle = Math.Round(kib, 2),
                Note = $"{kib:0.00} KiB per idle connection (RSS {baseline.ServerRssMb:0} MB at {baseline.Idle} idle, {row.ServerRssMb:0} MB at {row.Idle})",
            });
        }
    }

    /// <summary>
    /// 6. CPU-bound <c>work</c> RPC (~1 ms of SHA-256 each), 16 connections, every core available to the server:
    /// one reactor confined to one core (the single-threaded event loop) against designs that can use both.
    /// </summary>
    public async Task WorkAsync()
    {
        Progress($"scenario 6: CPU-bound work ({WorkRounds} rounds), server unpinned");
        var singleReactor = new ModelConfig("epoll-1core", ["--Gateway:Listeners:Rpc:Model=epoll", "--Gateway:Models:ReactorThreads=1"], ModelConfig.Unbounded);
        var configurations = new List<(ModelConfig Model, string? Cpus, string Note)>
        {
            (singleReactor, options.ServerCpus, "epoll, one reactor thread, pinned to one core: the single-threaded event loop"),
        };
        configurations.AddRange(Models.Where(m => m.Name is "kestrel" or "epoll" or "threads" or "prefork")
            .Select(m => (m, (string?)null, m.Name == "prefork" ? $"{Workers} worker processes" : "one process, thread pool")));
        foreach (var (model, cpus, note) in configurations)
        {
            await WithGatewayAsync(model, cpus, (server, rpc, _) =>
                MeasureAsync(model.Name, "work", server, null, 0, 0, note, "--port", $"{rpc}", "--connections", "16", "--method", "work", "--params", $"{{\"rounds\":{WorkRounds}}}"));
        }
    }

    /// <summary>7. Connection churn: 4 clients that each connect, ping once and close, over and over.</summary>
    public async Task ChurnAsync()
    {
        Progress("scenario 7: connection churn (connect, ping, close)");
        foreach (var model in Models)
        {
            var connections = Math.Min(4, model.MaxConnections);
            // A process per connection takes seconds from connect to reply on one core: a longer window, or no
            // connection both starts and ends inside it.
            var seconds = model.Warmup == 0 ? options.Seconds : Math.Max(options.Seconds, 20);
            await WithGatewayAsync(model, options.ServerCpus, (server, rpc, _) =>
                MeasureAsync(model.Name, "churn", server, options.LoadCpus, model.Warmup, 0, "rps = connections per second; latency from connect to reply",
                    "--port", $"{rpc}", "--connections", $"{connections}", "--reconnect", "1", "--duration", $"{seconds}"));
        }
    }

    /// <summary>8. FTP: STOR and RETR of one file through curl, Gateway against vsftpd (bench/ftp-vs-vsftpd).</summary>
    public async Task FtpAsync()
    {
        var mib = options.Quick ? 256 : 1024;
        Progress($"scenario 8: FTP {mib} MiB STOR and RETR through curl, against vsftpd");
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, UseShellExecute = false, WorkingDirectory = options.Root };
        info.ArgumentList.Add("bench/ftp-vs-vsftpd");
        info.ArgumentList.Add($"{mib}");
        info.Environment["ROUNDS"] = options.Quick ? "1" : "3";
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start bench/ftp-vs-vsftpd");
        var output = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"bench/ftp-vs-vsftpd failed ({process.ExitCode}):\n{output}");
        }

        // "STOR           best: gateway   812.3 MB/s, vsftpd   900.1 MB/s, ratio 0.90"
        foreach (var line in output.Split('\n').Where(l => l.Contains("best:", StringComparison.Ordinal)))
        {
            var label = line[..line.IndexOf("best:", StringComparison.Ordinal)].Trim();
            var scenario = "ftp-" + label.ToLowerInvariant().Replace(' ', '-');
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            double After(string word) => double.Parse(words[Array.IndexOf(words, word) + 1], CultureInfo.InvariantCulture);
            foreach (var server in new[] { "gateway", "vsftpd" })
            {
                Add(new Row(server == "gateway" ? "kestrel" : "vsftpd", scenario)
                {
                    Connections = 1,
                    MessageBytes = mib * 1048576,
                    Mbps = Math.Round(After(server) * 8, 1),
                    Note = $"curl, best of {info.Environment["ROUNDS"]}; {(label.Contains("durable", StringComparison.Ordinal) ? "vsftpd's time includes an fsync after" : "data phase only")}",
                });
            }
        }
    }
}
