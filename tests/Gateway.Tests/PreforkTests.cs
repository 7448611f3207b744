using System.Diagnostics;
using System.Text.Json;

namespace Gateway.Tests;

/// <summary>
/// The prefork pool as processes: real workers, children of a real gateway, seen through /proc, the admin
/// API and whoami. Each test starts its own gateway (some kill its workers) and stops it, workers included.
/// </summary>
public sealed class PreforkTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private static Task<GatewayProcess> StartAsync(string mode, int workers = 2) => GatewayProcess.StartAsync(
    [
        .. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Rpc:Model=prefork", "--Gateway:Listeners:Echo:Model=prefork",
        $"--Gateway:Workers:Mode={mode}", $"--Gateway:Workers:Count={workers}",
    ]);

    private static async Task<JsonElement[]> WorkersAsync(AdminApi admin) =>
        [.. (await admin.GetJsonAsync("/admin/workers")).EnumerateArray()];

    private static async Task<(int Pid, int Worker, string Model)> WhoAmIAsync(RpcConnection connection, CancellationToken cancellationToken)
    {
        var reply = await connection.Client.CallAsync("whoami", cancellationToken: cancellationToken);
        return (reply.Result.GetProperty("pid").GetInt32(), reply.Result.GetProperty("worker").GetInt32(), reply.Result.GetProperty("model").GetString()!);
    }

    /// <summary>The parent of a live process, from /proc; null once it is gone.</summary>
    private static int? ParentOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return int.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>Whether <paramref name="pid"/> is still a worker of ours (a reused pid would not run "Gateway.dll worker").</summary>
    private static bool IsWorkerAlive(int pid)
    {
        try
        {
            var commandLine = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0');
            return commandLine.Contains("worker") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static async Task WaitUntilGoneAsync(IEnumerable<int> pids)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (pids.Any(IsWorkerAlive))
        {
            Assert.True(DateTime.UtcNow < deadline, $"worker(s) {string.Join(", ", pids.Where(IsWorkerAlive))} still running");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task WorkersAreChildrenOfTheGatewayAndTheAdminApiListsThem()
    {
        await using var gateway = await StartAsync("async", workers: 3);
        using var admin = new AdminApi(gateway);
        var workers = await WorkersAsync(admin);

        Assert.Equal([0, 1, 2], workers.Select(w => w.GetProperty("index").GetInt32()));
        foreach (var worker in workers)
        {
            var pid = worker.GetProperty("pid").GetInt32();
            Assert.Equal(gateway.Pid, ParentOf(pid));
            Assert.Equal(("async", "ready", 0), (worker.Str("mode"), worker.Str("state"), worker.GetProperty("restarts").GetInt32()));
            Assert.True(worker.GetProperty("rssBytes").GetInt64() > 1024 * 1024, "a .NET process holds more than a MiB");
        }
    }

    [Fact]
    public async Task FortyConnectionsSpreadOverTheWorkers()
    {
        await using var gateway = await StartAsync("async");
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var byPid = (await WorkersAsync(admin)).ToDictionary(w => w.GetProperty("pid").GetInt32(), w => w.GetProperty("index").GetInt32());
        var connections = new List<RpcConnection>();
        try
        {
            var seen = new List<(int Pid, int Worker, string Model)>();
            for (var i = 0; i < 40; i++)
            {
                connections.Add(await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token));
                seen.Add(await WhoAmIAsync(connections[^1], timeout.Token));
            }

            Assert.All(seen, s => Assert.Equal((byPid[s.Pid], "prefork"), (s.Worker, s.Model)));
            // The kernel spreads a SO_REUSEPORT group by a hash of the client's address and port: 40 clients on
            // one of two workers would happen once in 2^39 runs.
            Assert.Equal(2, seen.Select(s => s.Pid).Distinct().Count());
            await admin.WaitForAsync("/admin/workers", json => json.EnumerateArray().Sum(w => w.GetProperty("connections").GetInt32()) == 40);
            // /admin/listeners (and the dashboard) count a prefork listener's connections in its workers.
            await admin.WaitForAsync("/admin/listeners", json => json.EnumerateArray().Single(l => l.Str("protocol") == "rpc") is var rpc
                && rpc.Num("active") == 40 && rpc.Num("accepted") >= 40 && rpc.Num("bytesIn") > 0);

            // /metrics has the workers' counts, one series per worker, and the pool's state.
            var metrics = await admin.MetricsAsync(text => AdminApi.SumOf(text, "gateway_connections_active", "protocol=\"rpc\"") == 40);
            foreach (var index in byPid.Values)
            {
                Assert.Equal(seen.Count(s => s.Worker == index), AdminApi.SumOf(metrics, "gateway_connections_active", $"worker=\"{index}\""));
            }

            Assert.Equal(2, AdminApi.SumOf(metrics, "gateway_workers", "state=\"ready\""));
            // No series from the supervisor itself for a listener it does not serve.
            Assert.DoesNotContain(metrics.Split('\n'), line => line.StartsWith("gateway_connections_active{", StringComparison.Ordinal)
                && line.Contains("model=\"prefork\"", StringComparison.Ordinal) && !line.Contains("worker=", StringComparison.Ordinal));
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(connections);
        }
    }

    [Fact]
    public async Task TheWorkersRequestsErrorsAndRejectionsReachTheSupervisorsMetrics()
    {
        // Per worker process: at most 2 connections from one address.
        await using var gateway = await GatewayProcess.StartAsync(
        [
            .. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Rpc:Model=prefork", "--Gateway:Workers:Mode=async",
            "--Gateway:Workers:Count=2", "--Gateway:Limits:MaxConnectionsPerIp=2",
        ]);
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var clients = new List<RpcConnection>();
        var crowd = new List<System.Net.Sockets.Socket>();
        try
        {
            // Six clients, each from its own address (none is refused): 5 pings and an unknown method each.
            var requestsByWorker = new Dictionary<int, int>();
            for (var i = 0; i < 6; i++)
            {
                var client = await RpcConnection.OpenAsync(gateway.Rpc, System.Net.IPAddress.Parse($"127.0.0.{10 + i}"), timeout.Token);
                clients.Add(client);
                var (_, worker, _) = await WhoAmIAsync(client, timeout.Token);
                for (var ping = 0; ping < 5; ping++)
                {
                    Assert.Equal("pong", (await client.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
                }

                Assert.Equal("unknown_method", (await client.Client.CallAsync("no-such-method", cancellationToken: timeout.Token)).ErrorCode);
                requestsByWorker[worker] = requestsByWorker.GetValueOrDefault(worker) + 7; // with whoami
            }

            // One sleep of 30 ms: the supervisor's histogram must put its duration (the sum) in the right bucket.
            Assert.Equal(30, (await clients[0].Client.CallAsync("sleep", 30, cancellationToken: timeout.Token)).Result.GetInt32());

            // Six more from one address: each worker admits two of them at most, so at least two are refused.
            for (var i = 0; i < 6; i++)
            {
                crowd.Add(await TcpClients.ConnectAsync(gateway.Rpc, System.Net.IPAddress.Parse("127.0.0.50"), timeout.Token));
            }

            const string Requests = "gateway_request_duration_seconds_count";
            var metrics = await admin.MetricsAsync(text => AdminApi.SumOf(text, Requests, "worker=") == 43
                && AdminApi.SumOf(text, "gateway_connections_rejected_total", "worker=") + AdminApi.SumOf(text, "gateway_connections_active", "worker=") == 12);

            foreach (var (worker, requests) in requestsByWorker)
            {
                var sleeps = worker == requestsByWorker.Keys.First() ? 1 : 0;
                Assert.Equal(requests + sleeps, AdminApi.SumOf(metrics, Requests, $"worker=\"{worker}\""));
            }

            Assert.Equal(30, AdminApi.SumOf(metrics, Requests, "operation=\"ping\""));
            Assert.Equal(6, AdminApi.SumOf(metrics, "gateway_protocol_errors_total", "code=\"unknown_method\""));
            Assert.InRange(AdminApi.SumOf(metrics, "gateway_connections_rejected_total", "reason=\"max_connections_per_ip\""), 2, 6);
            Assert.Equal(AdminApi.SumOf(metrics, Requests, "worker="), AdminApi.SumOf(metrics, "gateway_request_duration_seconds_bucket", "le=\"+Inf\""));
            var slept = AdminApi.SumOf(metrics, "gateway_request_duration_seconds_sum", "operation=\"sleep\"");
            var buckets = metrics.Split('\n')
                .Where(line => line.StartsWith("gateway_request_duration_seconds_bucket{", StringComparison.Ordinal) && line.Contains("operation=\"sleep\"", StringComparison.Ordinal))
                .Select(line => (
                    Le: double.Parse(line.Split("le=\"")[1].Split('"')[0].Replace("+Inf", "Infinity", StringComparison.Ordinal), System.Globalization.CultureInfo.InvariantCulture),
                    Count: double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture)))
                .OrderBy(b => b.Le)
                .ToArray();
            var first = Array.FindIndex(buckets, b => b.Count == 1);
            Assert.True(slept >= 0.030 && first > 0 && buckets[first - 1].Le < slept && slept <= buckets[first].Le,
                $"a {slept} s sleep counted in the bucket up to {buckets.ElementAtOrDefault(first).Le} s");
            // The supervisor serves no RPC itself: every series of the listener comes from a worker.
            Assert.DoesNotContain(metrics.Split('\n'), line => line.StartsWith(Requests + "{", StringComparison.Ordinal)
                && !line.Contains("worker=", StringComparison.Ordinal));
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(clients);

            crowd.ForEach(socket => socket.Dispose());
        }
    }

    [Fact]
    public async Task AKilledWorkerIsReplacedAndTheOtherKeepsItsConnections()
    {
        await using var gateway = await StartAsync("async");
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var connections = new List<RpcConnection>();
        try
        {
            // A connection on each worker.
            var onWorker = new Dictionary<int, (RpcConnection Connection, int Pid)>();
            for (var i = 0; i < 64 && onWorker.Count < 2; i++)
            {
                var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
                connections.Add(connection);
                var (pid, worker, _) = await WhoAmIAsync(connection, timeout.Token);
                onWorker.TryAdd(worker, (connection, pid));
            }

            Assert.Equal(2, onWorker.Count);
            Process.GetProcessById(onWorker[0].Pid).Kill(); // SIGKILL: no drain, no goodbye

            Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(onWorker[0].Connection.Socket, Patience));
            Assert.Equal("pong", (await onWorker[1].Connection.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
            var replaced = await admin.WaitForAsync("/admin/workers", json => json.EnumerateArray().Any(
                w => w.GetProperty("index").GetInt32() == 0 && w.GetProperty("pid").GetInt32() != onWorker[0].Pid && w.Str("state") == "ready"));
            var worker0 = replaced.EnumerateArray().First(w => w.GetProperty("index").GetInt32() == 0);
            Assert.Equal(1, worker0.GetProperty("restarts").GetInt32());
            Assert.Equal(gateway.Pid, ParentOf(worker0.GetProperty("pid").GetInt32()));
            Assert.True(await gateway.LogsAsync("Worker 0 (pid " + onWorker[0].Pid + ") exited with code 137", Patience), gateway.Output);

            // The pool serves new clients on both workers again.
            var pids = new HashSet<int>();
            for (var i = 0; i < 64 && pids.Count < 2; i++)
            {
                var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
                connections.Add(connection);
                pids.Add((await WhoAmIAsync(connection, timeout.Token)).Pid);
            }

            Assert.Contains(worker0.GetProperty("pid").GetInt32(), pids);
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(connections);
        }
    }

    [Fact]
    public async Task TheListingMergesEveryWorkersConnectionsAndNamesAWorkerThatDoesNotAnswer()
    {
        await using var gateway = await StartAsync("async");
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var clients = new List<System.Net.Sockets.Socket>();
        try
        {
            // Echo clients of 100..800 bytes; the kernel spreads them over both workers.
            for (var size = 100; size <= 800; size += 100)
            {
                var client = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: timeout.Token);
                clients.Add(client);
                await client.SendAsync(new byte[size], System.Net.Sockets.SocketFlags.None, timeout.Token);
                var back = new byte[size];
                for (var got = 0; got < size;)
                {
                    got += await client.ReceiveAsync(back.AsMemory(got), System.Net.Sockets.SocketFlags.None, timeout.Token);
                }
            }

            var page = await admin.WaitForAsync("/admin/connections?protocol=echo&sort=-bytesIn&offset=1&limit=3",
                p => p.Num("total") == 8 && p.Items().All(i => i.Num("bytesOut") == i.Num("bytesIn")));
            Assert.Equal([700L, 600, 500], page.Items().Select(i => i.Num("bytesIn")));
            Assert.Empty(page.GetProperty("unansweredWorkers").EnumerateArray());
            var all = await admin.GetJsonAsync("/admin/connections?protocol=echo&limit=100");
            var byWorker = all.Items().GroupBy(i => i.GetProperty("worker").GetInt32()).ToDictionary(g => g.Key, g => g.Count());
            Assert.Equal(8, byWorker.Values.Sum());

            // A worker that is stopped (SIGSTOP) cannot answer: the listing says so instead of silently
            // listing fewer connections.
            var stoppedIndex = byWorker.Keys.First();
            var stopped = (await WorkersAsync(admin)).First(w => w.GetProperty("index").GetInt32() == stoppedIndex).GetProperty("pid").GetInt32();
            Assert.Equal(0, GatewayProcess.Signal(stopped, SigStop));
            try
            {
                // kill() returns once the stop is queued; the listing below must meet a process already stopped.
                await WaitUntilStoppedAsync(stopped, timeout.Token);
                var partial = await admin.GetJsonAsync("/admin/connections?protocol=echo&limit=100");
                Assert.Equal([stoppedIndex], partial.GetProperty("unansweredWorkers").EnumerateArray().Select(w => w.GetInt32()));
                Assert.Equal(8 - byWorker[stoppedIndex], partial.Num("total"));
            }
            finally
            {
                Assert.Equal(0, GatewayProcess.Signal(stopped, SigCont));
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Dispose();
            }
        }
    }

    private const int SigStop = 19, SigCont = 18;

    /// <summary>Waits until /proc says every thread of the process is stopped (state T); a thread that exits meanwhile is not waited for.</summary>
    private static async Task WaitUntilStoppedAsync(int pid, CancellationToken cancellationToken)
    {
        static bool Stopped(string task)
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('T');
            }
            catch (IOException)
            {
                return true; // gone
            }
        }

        while (!Directory.EnumerateDirectories($"/proc/{pid}/task").All(Stopped))
        {
            await Task.Delay(10, cancellationToken);
        }
    }

    [Fact]
    public async Task AWorkerThatKeepsDyingYoungIsRestartedWithGrowingDelays()
    {
        await using var gateway = await StartAsync("async");
        using var admin = new AdminApi(gateway);
        // Three deaths, each within seconds of the worker's start: a crash loop, so each wait doubles.
        for (var death = 1; death <= 3; death++)
        {
            var pid = (await admin.WaitForAsync("/admin/workers", json => json.EnumerateArray().Any(
                    w => w.GetProperty("index").GetInt32() == 0 && w.Str("state") == "ready" && w.GetProperty("restarts").GetInt32() == death - 1)))
                .EnumerateArray().First(w => w.GetProperty("index").GetInt32() == 0).GetProperty("pid").GetInt32();
            Process.GetProcessById(pid).Kill();
            var delay = 1 << (death - 1);
            Assert.True(await gateway.LogsAsync($"Worker 0 (pid {pid}) exited with code 137", Patience), gateway.Output);
            Assert.Contains($"restarting in {delay} s (restart {death})", gateway.Output, StringComparison.Ordinal);
        }

        await admin.WaitForAsync("/admin/workers", json => json.EnumerateArray().Any(
            w => w.GetProperty("index").GetInt32() == 0 && w.Str("state") == "ready" && w.GetProperty("restarts").GetInt32() == 3));
    }

    [Fact]
    public async Task AWorkerThatStopsHeartBeatingIsKilledAndReplaced()
    {
        await using var gateway = await StartAsync("sync");
        using var admin = new AdminApi(gateway);
        var hung = (await WorkersAsync(admin)).First(w => w.GetProperty("index").GetInt32() == 1).GetProperty("pid").GetInt32();
        Assert.Equal(0, GatewayProcess.Signal(hung, SigStop)); // alive, silent: as a worker stuck in a loop
        var replaced = await admin.WaitForAsync("/admin/workers", json => json.EnumerateArray().Any(
            w => w.GetProperty("index").GetInt32() == 1 && w.GetProperty("pid").GetInt32() != hung && w.Str("state") == "ready"));
        Assert.Equal(1, replaced.EnumerateArray().First(w => w.GetProperty("index").GetInt32() == 1).GetProperty("restarts").GetInt32());
        Assert.True(await gateway.LogsAsync($"Worker 1 (pid {hung}) has not been heard from", Patience), gateway.Output);
        await WaitUntilGoneAsync([hung]);
    }

    [Fact]
    public async Task SyncWorkersServeOneClientEachAndAThirdWaitsForOneToLeave()
    {
        await using var gateway = await StartAsync("sync");
        using var timeout = new CancellationTokenSource(Patience);
        await using var first = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        await using var second = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var (firstPid, _, _) = await WhoAmIAsync(first, timeout.Token);
        var (secondPid, _, _) = await WhoAmIAsync(second, timeout.Token);
        Assert.NotEqual(firstPid, secondPid); // a busy sync worker does not accept: the idle one took it

        await using var third = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var waiting = WhoAmIAsync(third, timeout.Token);
        // Both workers are busy: the third client is connected (the backlog) but nobody reads it.
        Assert.NotSame(waiting, await Task.WhenAny(waiting, Task.Delay(TimeSpan.FromSeconds(1), timeout.Token)));

        await first.DisposeAsync();
        Assert.Equal(firstPid, (await waiting).Pid);
    }

    [Fact]
    public async Task PerConnectionStartsAProcessForEachClientAndReapsItWhenTheClientLeaves()
    {
        await using var gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Rpc:Model=prefork", "--Gateway:Workers:Mode=per-connection"]);
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        Assert.Empty(await WorkersAsync(admin)); // nothing runs until a client comes

        var connections = new List<RpcConnection>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                connections.Add(await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token));
            }

            var pids = new List<int>();
            foreach (var connection in connections)
            {
                var (pid, worker, model) = await WhoAmIAsync(connection, timeout.Token);
                Assert.Equal("prefork", model);
                Assert.Equal(gateway.Pid, ParentOf(pid));
                pids.Add(pid);
            }

            Assert.Equal(3, pids.Distinct().Count());
            var listed = await WorkersAsync(admin);
            Assert.Equal(pids.Order(), listed.Select(w => w.GetProperty("pid").GetInt32()).Order());
            Assert.All(listed, w => Assert.Equal("per-connection", w.Str("mode")));

            await RpcConnection.DisposeAllAsync(connections);

            connections.Clear();
            await WaitUntilGoneAsync(pids); // exited and reaped: no zombie left
            await admin.WaitForAsync("/admin/workers", json => json.GetArrayLength() == 0);

            // The processes are gone; what they counted is not: one series for the whole per-connection pool.
            await admin.MetricsAsync(text => AdminApi.SumOf(text, "gateway_connections_accepted_total", "worker=\"per-connection\"") == 3
                && AdminApi.SumOf(text, "gateway_connections_active", "worker=\"per-connection\"") == 0
                && AdminApi.SumOf(text, "gateway_request_duration_seconds_count", "worker=\"per-connection\"") == 3 // each whoami
                && AdminApi.SumOf(text, "gateway_io_bytes_total", "direction=\"receive\"") > 0);
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(connections);
        }
    }

    [Fact]
    public async Task PerConnectionAtItsProcessCapMakesTheNextClientWait()
    {
        await using var gateway = await GatewayProcess.StartAsync(
        [
            .. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Rpc:Model=prefork", "--Gateway:Workers:Mode=per-connection",
            "--Gateway:Workers:MaxProcesses=1",
        ]);
        using var timeout = new CancellationTokenSource(Patience);
        await using var first = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var (firstPid, _, _) = await WhoAmIAsync(first, timeout.Token);
        await using var second = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var waiting = WhoAmIAsync(second, timeout.Token);
        Assert.NotSame(waiting, await Task.WhenAny(waiting, Task.Delay(TimeSpan.FromSeconds(2), timeout.Token)));

        await first.DisposeAsync();
        Assert.NotEqual(firstPid, (await waiting).Pid); // a fresh process, once the first one's has gone
    }

    [Fact]
    public async Task SigtermDrainsEveryWorkerAndLeavesNoProcessBehind()
    {
        await using var gateway = await StartAsync("async");
        using var timeout = new CancellationTokenSource(Patience);
        using var admin = new AdminApi(gateway);
        var pids = (await WorkersAsync(admin)).Select(w => w.GetProperty("pid").GetInt32()).ToArray();
        await using (var connection = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token))
        {
            // A request in flight when SIGTERM comes is answered before its worker exits; new clients are refused.
            await TcpClients.StartSleepInFlightAsync(connection, timeout.Token);
            gateway.Terminate();
            Assert.True(await TcpClients.RefusedWithinAsync(gateway.Rpc, timeout.Token), "the pool kept accepting after SIGTERM");
            var reply = await connection.Client.ReceiveAsync(timeout.Token);
            Assert.Equal(("sleep", "in-flight"), (reply?.Out, reply?.Id?.GetString()));
        }

        Assert.Equal(0, await gateway.WaitForExitAsync(Patience));
        await WaitUntilGoneAsync(pids);
        Assert.Contains("Worker 0 (pid " + pids[0] + ") stopped with code 0", gateway.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WorkersDieWithASupervisorKilledBySigkill()
    {
        await using var gateway = await StartAsync("sync");
        using var admin = new AdminApi(gateway);
        var pids = (await WorkersAsync(admin)).Select(w => w.GetProperty("pid").GetInt32()).ToArray();
        Process.GetProcessById(gateway.Pid).Kill(); // the supervisor alone, as the OOM killer would
        await WaitUntilGoneAsync(pids);
    }
}
