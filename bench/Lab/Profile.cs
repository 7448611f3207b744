using System.Diagnostics;
using System.Text;

namespace Gateway.Lab;

/// <summary>
/// <c>--profile</c>: a CPU profile of the server over one LoadGen run, with <c>perf record -e cpu-clock</c>
/// (a software event: this machine's virtual CPUs expose no hardware counters) on the server's CPU when pinned,
/// else on every CPU. The gateway runs with <c>DOTNET_PerfMapEnabled=1</c> so JIT-compiled methods have names.
/// The report, a text file per run under <c>profiles/</c>, says where the CPU went: by process and library
/// (kernel, runtime, JIT-compiled code, libc, OpenSSL), the heaviest functions, the system calls with what
/// they cost inside the kernel (call graphs, children included), and per request (from <c>perf stat</c> over the
/// same CPUs): context switches, system calls, epoll_wait and futex calls.
/// </summary>
/// <remarks>
/// On this machine's paravirtualised kernel most kernel self time lands on <c>pvm_irq_enable</c>: the sampling
/// timer fires when interrupts are enabled again, so kernel time is read from the call graph (children).
/// </remarks>
internal sealed class Profile : IAsyncDisposable
{
    private static readonly string[] Counted = ["context-switches", "raw_syscalls:sys_enter", "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_futex"];
    private readonly Process _perf;
    private readonly Process _stat;
    private readonly string _data;
    private readonly string _report;
    private readonly long _started = Stopwatch.GetTimestamp();
    private bool _stopped;

    private Profile(Process perf, Process stat, string data, string report)
    {
        _perf = perf;
        _stat = stat;
        _data = data;
        _report = report;
    }

    /// <summary>The environment a server needs for a readable profile (names for JIT-compiled methods).</summary>
    public static IReadOnlyDictionary<string, string> ServerEnvironment { get; } = new Dictionary<string, string>
    {
        ["DOTNET_PerfMapEnabled"] = "1",
        // With W^X on, JIT-compiled code runs from a double-mapped memfd that perf does not match to the map file.
        ["DOTNET_EnableWriteXorExecute"] = "0",
    };

    /// <summary>Starts recording the server's CPU (or every CPU when <paramref name="cpus"/> is null) until disposed.</summary>
    public static async Task<Profile> StartAsync(LabOptions options, string? cpus, string label)
    {
        var directory = Path.Combine(options.Output, "profiles");
        Directory.CreateDirectory(directory);
        var name = string.Concat(label.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '.' ? c : '_'));
        var data = Path.Combine(Path.GetTempPath(), $"lab-{Environment.ProcessId}-{name}.perf.data");
        string[] where = cpus is null ? ["-a"] : ["-C", cpus];
        var perf = Perf(["record", "-e", "cpu-clock", "-F", "999", "-g", .. where, "-o", data, "--quiet"]);
        var stat = Perf(["stat", "-x", ",", "-o", data + ".stat", .. Counted.SelectMany(e => new[] { "-e", e }), .. where]);
        await Task.Delay(300); // perf opens its events before the load starts
        if (perf.HasExited || stat.HasExited)
        {
            await StopAsync(perf);
            await StopAsync(stat);
            throw new InvalidOperationException("perf exited at start (is perf installed and perf_event_paranoid ≤ 2?)");
        }

        return new Profile(perf, stat, data, Path.Combine(directory, $"{name}.txt"));
    }

    private static Process Perf(string[] arguments)
    {
        var perf = Process.Start(new ProcessStartInfo("perf", arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        }) ?? throw new InvalidOperationException("could not start perf");
        _ = perf.StandardOutput.ReadToEndAsync();
        _ = perf.StandardError.ReadToEndAsync();
        return perf;
    }

    /// <summary>Stops one perf (SIGINT, as Ctrl-C, so it writes its file) and waits for it.</summary>
    private static async Task StopAsync(Process perf)
    {
        if (!perf.HasExited)
        {
            ServerProcess.Signal(perf.Id, 2);
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await perf.WaitForExitAsync(patience.Token);
            }
            catch (OperationCanceledException)
            {
                perf.Kill();
            }
        }

        perf.Dispose();
    }

    /// <summary>Stops recording and writes the report; <paramref name="rps"/>, the run's request rate, gives the per-request counts.</summary>
    public async Task StopAsync(double rps)
    {
        if (_stopped)
        {
            return;
        }

        _stopped = true;
        var seconds = Stopwatch.GetElapsedTime(_started).TotalSeconds;
        await StopAsync(_perf);
        await StopAsync(_stat);
        try
        {
            var report = new StringBuilder();
            report.AppendLine(await CountsAsync(seconds, rps));
            report.AppendLine("# by process and library (self time, % of samples on the profiled CPUs)");
            report.AppendLine(await ReportAsync("--no-children", "--sort", "comm,dso", "--percent-limit", "0.5", "-g", "none"));
            report.AppendLine("# heaviest functions (self time; kernel self time mostly lands on pvm_irq_enable on this paravirtualised");
            report.AppendLine("# kernel, where the sampling timer fires as interrupts come back on: read the kernel's share from the next table)");
            report.AppendLine(await ReportAsync("--no-children", "--sort", "dso,sym", "--percent-limit", "0.7", "-g", "none"));
            report.AppendLine("# time inside each function, children included (≥ 2 %): system calls, kernel paths, the managed call chain");
            var children = await ReportAsync("--children", "--sort", "sym", "--percent-limit", "2", "-g", "none");
            report.AppendJoin('\n', children.Split('\n').Where(l => !l.Contains("] 0x", StringComparison.Ordinal))); // frames perf could not name
            await File.WriteAllTextAsync(_report, report.ToString());
        }
        finally
        {
            File.Delete(_data);
            File.Delete(_data + ".old");
            File.Delete(_data + ".stat");
        }
    }

    /// <summary>Stops without a request rate (the run failed): the report has no per-request column.</summary>
    public async ValueTask DisposeAsync() => await StopAsync(0);

    /// <summary>
    /// perf stat's counts over the recording, per second and per request. The recording also spans LoadGen's start
    /// and warm-up, so per-request figures are the count over the whole recording divided by rps × its length: a
    /// slight underestimate when the server idles while LoadGen starts.
    /// </summary>
    private async Task<string> CountsAsync(double seconds, double rps)
    {
        var text = new StringBuilder($"# counted over {seconds:0.0} s on the profiled CPUs (perf stat){(rps > 0 ? $"; per request at {rps:0}/s" : "")}\n");
        var lines = File.Exists(_data + ".stat") ? await File.ReadAllLinesAsync(_data + ".stat") : [];
        foreach (var fields in lines.Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l.Split(',')))
        {
            if (fields.Length > 2 && double.TryParse(fields[0], System.Globalization.CultureInfo.InvariantCulture, out var count))
            {
                var perRequest = rps > 0 ? $"  {count / seconds / rps,10:0.000} per request" : "";
                text.AppendLine($"    {fields[2],-32} {count,12:0} {count / seconds,12:0}/s{perRequest}");
            }
        }

        return text.ToString();
    }

    private async Task<string> ReportAsync(params string[] arguments) =>
        await Pinned.OutputAsync(Pinned.Command(null, "perf", ["report", "-i", _data, "--stdio", "--quiet", .. arguments]));
}
