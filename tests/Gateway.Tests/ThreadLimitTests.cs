using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests;

/// <summary>
/// Threads and processes the system will not create: under a real PID limit (a cgroup's <c>pids.max</c>, as a
/// container's <c>--pids-limit</c> or a Kubernetes pod's PID limit sets it) a connection whose threads or worker
/// process cannot be started is closed and counted, and nothing else is lost — before, the <c>threads</c> model
/// died of "Out of memory." with every listener. And the <c>threads</c> model's own cap, Gateway:Models:MaxThreads.
/// </summary>
public sealed class ThreadLimitTests
{
    private const int Clients = 200;

    /// <summary>The limit's room above an idle gateway: a few dozen connection threads.</summary>
    private const int Room = 60;

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    [Theory]
    [InlineData(null, "max_threads")] // the default cap, read from pids.max at start: the kernel's limit is never reached
    [InlineData(100_000, "no_thread")] // a cap above the limit: the kernel refuses the threads themselves
    public async Task ThreadsUnderARealPidLimitLoseOnlyTheConnectionsThatDoNotFit(int? maxThreads, string reason)
    {
        using var cgroup = PidsCgroup.Create();
        string[] args =
        [
            .. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Echo:Model=threads",
            .. maxThreads is { } max ? [$"--Gateway:Models:MaxThreads={max}"] : Array.Empty<string>(),
        ];

        // An idle gateway's tasks in the group, then the limit a few dozen above that, in force from the start.
        await using (var idle = await GatewayProcess.StartAsync(cgroup.Wrap(GatewayProcess.Command(args))))
        {
            await Task.Delay(1000);
            cgroup.Max = cgroup.Current + Room;
        }

        await cgroup.WaitUntilEmptyAsync(Patience);
        await using var gateway = await GatewayProcess.StartAsync(cgroup.Wrap(GatewayProcess.Command(args)));
        using var timeout = new CancellationTokenSource(Patience * 2);
        var (echoed, closed) = await EchoClientsAsync(gateway, Clients, timeout.Token);

        Assert.False(gateway.HasExited, $"the gateway died:\n{gateway.Output}");
        Assert.True(echoed > 0 && closed > 0, $"{echoed} echoed, {closed} closed: the limit should have left room for some, not all");
        await using (var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token))
        {
            Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
        }

        using var admin = new AdminApi(gateway);
        var metrics = await admin.MetricsAsync(timeout.Token);
        var refused = Rejected(metrics, reason);
        Assert.True(refused > 0, $"nothing counted as {reason}:\n{metrics}");
        Assert.Equal(closed, refused + Rejected(metrics, reason == "no_thread" ? "max_threads" : "no_thread"));
        if (maxThreads is null)
        {
            Assert.Equal(0, Rejected(metrics, "no_thread"));
            Assert.Equal(0, cgroup.LimitHits); // the cap kept every thread start below the kernel's limit
        }

        // One line per burst, not one per connection; the threads of the served clients are given back.
        var lines = gateway.Output.Split('\n').Count(l => l.Contains("connection(s) on Gateway:Listeners:Echo", StringComparison.Ordinal));
        Assert.InRange(lines, 1, 3);
        Assert.True(await EchoesAgainAsync(gateway, timeout.Token), $"no echo client was served after the others left:\n{gateway.Output}");
    }

    [Fact]
    public async Task PerConnectionWorkersThatCannotBeStartedLoseOnlyTheirConnections()
    {
        using var cgroup = PidsCgroup.Create();
        await using var gateway = await GatewayProcess.StartAsync(cgroup.Wrap(GatewayProcess.Command(
            [.. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Echo:Model=prefork", "--Gateway:Workers:Mode=per-connection"])));
        await Task.Delay(1000);
        cgroup.Max = cgroup.Current + 8; // no room for a .NET process: fork(2) fails, or the new runtime does
        using var timeout = new CancellationTokenSource(Patience * 2);
        var (_, closed) = await EchoClientsAsync(gateway, 20, timeout.Token);

        Assert.False(gateway.HasExited, $"the gateway died:\n{gateway.Output}");
        await using (var rpc = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token))
        {
            Assert.Equal("pong", (await rpc.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
        }

        using var admin = new AdminApi(gateway);
        var metrics = await admin.MetricsAsync(timeout.Token);
        var refused = Rejected(metrics, "no_process");
        Assert.True(refused >= 1 && refused <= closed, $"{refused} counted as no_process for {closed} clients closed unserved:\n{metrics}");
        var lines = gateway.Output.Split('\n').Count(l => l.Contains("unserved: no worker process took them", StringComparison.Ordinal));
        Assert.InRange(lines, 1, 3);
    }

    [Fact]
    public async Task MaxThreadsRefusesTheConnectionWhoseThreadsWouldGoOverItAndAFreedPlaceIsTakenAgain()
    {
        // Two threads per connection: ten threads are five connections.
        await using var gateway = await GatewayProcess.StartAsync(
            [.. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Rpc:Model=threads", "--Gateway:Models:MaxThreads=10"]);
        using var timeout = new CancellationTokenSource(Patience);
        Assert.Contains("at most 10 connection threads, 5 connections (Gateway:Models:MaxThreads)", gateway.Output, StringComparison.Ordinal);
        var served = new List<RpcConnection>();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                served.Add(await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token));
                Assert.Equal("pong", (await served[^1].Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
            }

            using (var sixth = await TcpClients.ConnectAsync(gateway.Rpc, cancellationToken: timeout.Token))
            {
                Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(sixth, Patience)); // closed without a byte
            }

            using var admin = new AdminApi(gateway);
            Assert.Equal(1, Rejected(await admin.MetricsAsync(timeout.Token), "max_threads", "rpc"));
            foreach (var connection in served)
            {
                Assert.Equal("pong", (await connection.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
            }

            // A connection's threads go back when it ends (a moment after the client closes): then another fits.
            await served[0].DisposeAsync();
            served.RemoveAt(0);
            string? answer = null;
            for (var attempt = 0; attempt < 50 && answer is null; attempt++)
            {
                await using var again = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
                try
                {
                    answer = (await again.Client.CallAsync("ping", "in", cancellationToken: timeout.Token)).Result.GetString();
                }
                catch (Exception e) when (e is EndOfStreamException or IOException or SocketException)
                {
                    await Task.Delay(100, timeout.Token);
                }
            }

            Assert.Equal("in", answer);
        }
        finally
        {
            await RpcConnection.DisposeAllAsync(served);
        }
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("1")]
    public async Task AMaxThreadsThatFitsNoConnectionStopsTheStart(string value)
    {
        var (exitCode, _, stderr) = await GatewayProcess.RunToExitAsync([.. GatewayProcess.LoopbackArgs, $"--Gateway:Models:MaxThreads={value}"]);
        Assert.Equal(2, exitCode);
        Assert.Contains("Gateway:Models:MaxThreads: must be 0 (from the PID limits) or at least 2", stderr, StringComparison.Ordinal);
    }

    /// <summary>
    /// Opens <paramref name="count"/> echo clients and keeps them all open (a served one keeps its threads), then
    /// has each send a line: it comes back, or the connection is closed (end of stream or reset). A client that
    /// gets neither within the patience fails the test.
    /// </summary>
    private static async Task<(int Echoed, int Closed)> EchoClientsAsync(GatewayProcess gateway, int count, CancellationToken cancellationToken)
    {
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < count; i++)
            {
                try
                {
                    sockets.Add(await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: cancellationToken));
                }
                catch (SocketException e)
                {
                    await Task.Delay(500, CancellationToken.None); // let a dying gateway finish its last words
                    Assert.Fail($"client {i} could not connect ({e.SocketErrorCode}); the gateway " +
                        $"{(gateway.HasExited ? $"exited with code {gateway.ExitCode}" : "still runs")}; its output ends:\n{Tail(gateway.Output)}");
                }
            }

            var outcomes = await Task.WhenAll(sockets.Select((socket, i) => EchoOnceAsync(socket, $"client {i}\n", cancellationToken)));
            var hung = outcomes.Count(o => o is null);
            Assert.True(hung == 0, $"{hung} of {count} clients were neither echoed nor closed");
            return (outcomes.Count(o => o == true), outcomes.Count(o => o == false));
        }
        finally
        {
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    /// <summary>True: echoed; false: closed by the server; null: neither in time.</summary>
    private static async Task<bool?> EchoOnceAsync(Socket socket, string line, CancellationToken cancellationToken)
    {
        var sent = Encoding.ASCII.GetBytes(line);
        var received = new byte[sent.Length];
        try
        {
            await socket.SendAsync(sent, SocketFlags.None, cancellationToken);
            var total = 0;
            while (total < received.Length)
            {
                var n = await socket.ReceiveAsync(received.AsMemory(total), SocketFlags.None, cancellationToken);
                if (n == 0)
                {
                    return false;
                }

                total += n;
            }

            Assert.Equal(line, Encoding.ASCII.GetString(received));
            return true;
        }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted)
        {
            return false;
        }
        catch (OperationCanceledException)
        {
            return null;
        }
    }

    private static async Task<bool> EchoesAgainAsync(GatewayProcess gateway, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 50; attempt++)
        {
            using var socket = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: cancellationToken);
            if (await EchoOnceAsync(socket, "again\n", cancellationToken) == true)
            {
                return true;
            }

            await Task.Delay(100, cancellationToken);
        }

        return false;
    }

    private static string Tail(string output) => string.Join('\n', output.Split('\n').TakeLast(15));

    private static long Rejected(string metrics, string reason, string protocol = "echo") =>
        (long)AdminApi.SumOf(metrics, "gateway_connections_rejected_total", $"protocol=\"{protocol}\"", $"reason=\"{reason}\"");

    /// <summary>
    /// A pids cgroup of the test's own, under the cgroup v2 root when its pids controller is there, else under the
    /// v1 pids hierarchy; removed (once its processes have gone) when disposed. Needs root, as the tests run here.
    /// </summary>
    private sealed class PidsCgroup : IDisposable
    {
        private PidsCgroup(string path) => Path = path;

        public string Path { get; }

        /// <summary>pids.current: the group's tasks (threads) now.</summary>
        public long Current => long.Parse(File.ReadAllText(System.IO.Path.Combine(Path, "pids.current")).Trim(), CultureInfo.InvariantCulture);

        public long Max
        {
            set => File.WriteAllText(System.IO.Path.Combine(Path, "pids.max"), value.ToString(CultureInfo.InvariantCulture));
        }

        /// <summary>pids.events' <c>max</c>: how often a fork or thread start failed on this group's limit.</summary>
        public long LimitHits => File.ReadAllLines(System.IO.Path.Combine(Path, "pids.events"))
            .Select(l => l.Split(' ')).Where(f => f is ["max", _]).Select(f => long.Parse(f[1], CultureInfo.InvariantCulture)).Sum();

        public static PidsCgroup Create()
        {
            var parent = File.Exists("/sys/fs/cgroup/cgroup.controllers")
                && File.ReadAllText("/sys/fs/cgroup/cgroup.controllers").Split(' ', '\n').Contains("pids")
                    ? "/sys/fs/cgroup" // v2: the pids controller must be on for the root's children
                    : "/sys/fs/cgroup/pids"; // v1
            if (parent == "/sys/fs/cgroup")
            {
                File.WriteAllText("/sys/fs/cgroup/cgroup.subtree_control", "+pids");
            }

            Assert.True(Directory.Exists(parent), "these tests need a pids cgroup hierarchy (cgroup v2 with the pids controller, or v1's /sys/fs/cgroup/pids)");
            var path = System.IO.Path.Combine(parent, $"gateway-test-{Guid.NewGuid():N}");
            try
            {
                Directory.CreateDirectory(path);
            }
            catch (UnauthorizedAccessException e)
            {
                Assert.Fail($"these tests need to create a cgroup (root, a writable {parent}): {e.Message}");
            }

            return new PidsCgroup(path);
        }

        /// <summary>The same command, run by a shell that first moves itself into the group, then becomes the command (exec): same pid.</summary>
        public ProcessStartInfo Wrap(ProcessStartInfo command)
        {
            var wrapped = new ProcessStartInfo("sh")
            {
                RedirectStandardOutput = command.RedirectStandardOutput,
                RedirectStandardError = command.RedirectStandardError,
                UseShellExecute = false,
                WorkingDirectory = command.WorkingDirectory,
            };
            foreach (var argument in (string[])["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\"", Path, command.FileName, .. command.ArgumentList])
            {
                wrapped.ArgumentList.Add(argument);
            }

            foreach (var (name, value) in command.Environment)
            {
                wrapped.Environment[name] = value;
            }

            return wrapped;
        }

        public async Task WaitUntilEmptyAsync(TimeSpan patience)
        {
            var deadline = DateTime.UtcNow + patience;
            while (File.ReadAllText(System.IO.Path.Combine(Path, "cgroup.procs")).Trim().Length > 0)
            {
                Assert.True(DateTime.UtcNow < deadline, $"processes still in {Path}: {File.ReadAllText(System.IO.Path.Combine(Path, "cgroup.procs"))}");
                await Task.Delay(50);
            }
        }

        /// <summary>Every process started in it is stopped by its test (by pid) first; a group is removed once empty.</summary>
        public void Dispose()
        {
            WaitUntilEmptyAsync(Patience).GetAwaiter().GetResult();
            Directory.Delete(Path);
        }
    }
}
