using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Lab;

/// <summary>What a server has used so far: CPU seconds in user space and in the kernel, and context switches.</summary>
internal readonly record struct ServerUsage(double UserSeconds, double SystemSeconds, long ContextSwitches)
{
    public double CpuSeconds => UserSeconds + SystemSeconds;

    /// <summary>What was used between <paramref name="earlier"/> and this.</summary>
    public ServerUsage Since(ServerUsage earlier) =>
        new(UserSeconds - earlier.UserSeconds, SystemSeconds - earlier.SystemSeconds, ContextSwitches - earlier.ContextSwitches);
}

/// <summary>
/// A server the lab started (a gateway, redis-server, iperf3): its process, optionally pinned to CPUs with
/// taskset, and its resource use read from /proc over the whole process tree (a prefork gateway's workers
/// count). Stopped by its own pid — SIGTERM, then SIGKILL — and never by name.
/// </summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private static readonly double TicksPerSecond = 100; // USER_HZ on Linux
    private readonly Process _process;
    private readonly StringWriter _log = new();

    private ServerProcess(Process process, string name)
    {
        _process = process;
        Name = name;
    }

    public string Name { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>The last lines the server wrote (for a failure message).</summary>
    public string Log
    {
        get
        {
            lock (_log)
            {
                var lines = _log.ToString().Split('\n');
                return string.Join('\n', lines.TakeLast(20));
            }
        }
    }

    /// <summary>Starts <paramref name="file"/> with <paramref name="arguments"/>, under taskset when <paramref name="cpus"/> is given.</summary>
    public static ServerProcess Start(string name, string file, IEnumerable<string> arguments, string? cpus, IDictionary<string, string>? environment = null)
    {
        var info = Pinned.Command(cpus, file, arguments);
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[key] = value;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {file}");
        var server = new ServerProcess(process, name);
        process.OutputDataReceived += (_, e) => server.Append(e.Data);
        process.ErrorDataReceived += (_, e) => server.Append(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_log)
            {
                _log.WriteLine(line);
            }
        }
    }

    /// <summary>Waits until <paramref name="ready"/> says yes, or fails with the server's log.</summary>
    public async Task WaitReadyAsync(Func<Task<bool>> ready, TimeSpan patience)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(patience.TotalSeconds * Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited with {_process.ExitCode}:\n{Log}");
            }

            try
            {
                if (await ready())
                {
                    return;
                }
            }
            catch (Exception e) when (e is SocketException or IOException or TimeoutException or OperationCanceledException)
            {
                // not yet
            }

            await Task.Delay(100);
        }

        throw new TimeoutException($"{Name} was not ready within {patience.TotalSeconds} s:\n{Log}");
    }

    /// <summary>Whether a TCP connection to the port is accepted.</summary>
    public static async Task<bool> AcceptsAsync(int port)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), timeout.Token);
        return true;
    }

    /// <summary>
    /// CPU time (reaped children included) and context switches so far of the server and every process under it.
    /// The kernel keeps context switches per thread: those of threads that have exited are not counted.
    /// </summary>
    public ServerUsage Usage()
    {
        double user = 0, system = 0;
        long switches = 0;
        foreach (var (pid, stat) in Tree())
        {
            user += stat[11] / TicksPerSecond; // utime
            system += stat[12] / TicksPerSecond; // stime
            if (pid == Pid)
            {
                user += stat[13] / TicksPerSecond; // cutime, cstime: children it waited for
                system += stat[14] / TicksPerSecond;
            }

            switches += ContextSwitches(pid);
        }

        return new ServerUsage(user, system, switches);
    }

    /// <summary>Voluntary and involuntary context switches of every live thread of one process.</summary>
    private static long ContextSwitches(int pid)
    {
        long total = 0;
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    foreach (var line in File.ReadLines(Path.Combine(task, "status")))
                    {
                        if (line.StartsWith("voluntary_ctxt_switches:", StringComparison.Ordinal) || line.StartsWith("nonvoluntary_ctxt_switches:", StringComparison.Ordinal))
                        {
                            total += long.Parse(line.AsSpan(line.IndexOf(':') + 1).Trim(), CultureInfo.InvariantCulture);
                        }
                    }
                }
                catch (IOException)
                {
                    // the thread exited meanwhile
                }
            }
        }
        catch (IOException)
        {
            // the process exited meanwhile
        }

        return total;
    }

    /// <summary>Resident memory of the server and every process under it, in bytes.</summary>
    public long RssBytes()
    {
        var pageSize = Environment.SystemPageSize;
        return Tree().Sum(p => (long)p.Stat[21] * pageSize); // rss, in pages
    }

    /// <summary>
    /// Proportional set size of the server and every process under it, in bytes (<c>/proc/[pid]/smaps_rollup</c>):
    /// what the tree holds, with shared pages split among those that share them.
    /// </summary>
    public long PssBytes()
    {
        long total = 0;
        foreach (var (pid, _) in Tree())
        {
            try
            {
                var line = File.ReadLines($"/proc/{pid}/smaps_rollup").FirstOrDefault(l => l.StartsWith("Pss:", StringComparison.Ordinal));
                var words = line?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];
                total += words.Length > 1 && long.TryParse(words[1], NumberStyles.None, CultureInfo.InvariantCulture, out var kib) ? kib * 1024 : 0;
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }

        return total;
    }

    /// <summary>
    /// The server's process and its descendants, each with the fields of /proc/[pid]/stat after the command
    /// name (index 0 is the state; so field n of proc(5) is at n − 3). taskset execs the server in place, so
    /// the server is the started process itself.
    /// </summary>
    private List<(int Pid, long[] Stat)> Tree()
    {
        var all = new Dictionary<int, (int Parent, long[] Stat)>();
        foreach (var directory in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(directory), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var text = File.ReadAllText(Path.Combine(directory, "stat"));
                var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
                var numbers = fields.Select(f => long.TryParse(f, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n : 0).ToArray();
                all[pid] = ((int)numbers[1], numbers);
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }

        var children = all.ToLookup(p => p.Value.Parent, p => p.Key);
        var tree = new List<(int, long[])>();
        var queue = new Queue<int>([Pid]);
        while (queue.Count > 0 && tree.Count < 100_000)
        {
            var pid = queue.Dequeue();
            if (all.TryGetValue(pid, out var entry))
            {
                tree.Add((pid, entry.Stat));
                foreach (var child in children[pid])
                {
                    queue.Enqueue(child);
                }
            }
        }

        return tree;
    }

    /// <summary>SIGTERM, a grace period, then SIGKILL; only this process (a gateway stops its own workers).</summary>
    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            Signal(_process.Id, 15);
            using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            try
            {
                await _process.WaitForExitAsync(grace.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }

        _process.Dispose();
    }

    /// <summary>Sends <paramref name="signal"/> to one process by its pid, with kill(1).</summary>
    public static void Signal(int pid, int signal)
    {
        using var kill = Process.Start(new ProcessStartInfo("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)]) { UseShellExecute = false });
        kill?.WaitForExit();
    }

    /// <summary>A free loopback port: bound to port 0, read, released (the server binds it right after).</summary>
    public static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }
}
