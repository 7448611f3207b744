using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Gateway.Lab;

/// <summary>
/// One LoadGen run's figures (its JSON line), with what the server used over the measured window (null when
/// LoadGen did not mark both its edges), the server's peak memory over the run and the warm-up it was given.
/// </summary>
internal sealed record LoadResult(JsonElement Report, ServerUsage? Window, double ServerRssMb, int Warmup, int ExitCode = 0)
{
    /// <summary>How far the last warm-up second may be from the measured window's rate for the run to count as settled.</summary>
    public const double SettledWithin = 0.10;

    /// <summary>Below this many replies a second, one second's count is too coarse to judge settling by.</summary>
    private const double JudgedFrom = 200;

    public double Get(string field) => Report.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : 0;

    /// <summary>Replies in each second from the first request, warm-up included (LoadGen <c>--timeline 1</c>).</summary>
    public IReadOnlyList<double> Timeline => Report.TryGetProperty("timeline", out var timeline)
        ? [.. timeline.EnumerateArray().Select(s => s.GetDouble())] : [];

    /// <summary>The last warm-up second's rate as a share of the measured window's; null when not judged (no warm-up, a slow cell).</summary>
    public double? Settling => Warmup > 0 && Timeline is { } timeline && timeline.Count > Warmup && Get("rps") >= JudgedFrom
        ? timeline[Warmup - 1] / Get("rps") : null;

    public bool Settled => Settling is not { } share || Math.Abs(share - 1) <= SettledWithin;

    /// <summary>A row for this run: LoadGen's throughput and latency, the server's CPU, context switches and memory.</summary>
    public Row ToRow(string model, string scenario, int idle = 0, string? note = null)
    {
        var requests = Get("requests");
        double? PerRequest(double? total, int digits) => total is { } t && requests > 0 ? Math.Round(t / requests, digits) : null;
        return new(model, scenario)
        {
            // LoadGen exits non-zero when a connection failed or an idle one was closed: the figures are partial.
            Partial = ExitCode != 0,
            Note = ExitCode == 0 ? note : $"LoadGen exit {ExitCode}: {Get("failed_connections")} connection(s) failed, {Get("idle_open_at_end")}/{idle} idle still open at the end{(note is null ? "" : $"; {note}")}",
            Connections = (int)Get("connections"),
            Pipeline = (int)Get("pipeline"),
            Idle = idle,
            MessageBytes = (int)Get("message_bytes"),
            Rps = Get("rps"),
            Mbps = Get("mbps"),
            P50Us = Get("p50_us"),
            P90Us = Get("p90_us"),
            P99Us = Get("p99_us"),
            P999Us = Get("p999_us"),
            ServerCpuS = Math.Round(Window?.CpuSeconds ?? 0, 2),
            CpuUsPerRequest = PerRequest(Window?.CpuSeconds * 1e6, 2),
            UserUsPerRequest = PerRequest(Window?.UserSeconds * 1e6, 2),
            ContextSwitchesPerRequest = PerRequest(Window?.ContextSwitches, 3),
            ServerRssMb = Math.Round(ServerRssMb, 1),
            Settling = Settling is { } share ? Math.Round(share, 3) : null,
        };
    }
}

/// <summary>Runs bench/LoadGen as its own process (pinned apart from the server when the scenario says so).</summary>
internal sealed class Load(LabOptions options)
{
    private const string Measuring = "LoadGen: measuring", Measured = "LoadGen: measured";

    public string LoadGenDll => Path.Combine(options.Root, "bench/LoadGen/bin/Release/net10.0/LoadGen.dll");

    /// <summary>
    /// Runs LoadGen with <paramref name="arguments"/> (plus the lab's duration and warm-up unless given, its timeline
    /// and its window marks) against <paramref name="server"/>: the server's CPU and context switches are read as
    /// the measured window opens and closes, its memory every 200 ms (the row's memory is the peak).
    /// </summary>
    /// With <c>--profile</c>, the server's CPU is profiled over the run and the report is named by <paramref name="label"/>.
    public async Task<LoadResult> RunAsync(ServerProcess server, string? cpus, int warmup, string label, params string[] arguments)
    {
        var info = Pinned.Command(cpus, "dotnet", [LoadGenDll, .. arguments, "--timeline", "1", "--marks", "1"]);
        if (!arguments.Contains("--duration"))
        {
            info.ArgumentList.Add("--duration");
            info.ArgumentList.Add($"{options.Seconds}");
        }

        var warmupSeconds = Array.IndexOf(arguments, "--warmup") is >= 0 and var at ? int.Parse(arguments[at + 1], System.Globalization.CultureInfo.InvariantCulture) : Math.Max(warmup, options.Warmup);
        if (!arguments.Contains("--warmup"))
        {
            info.ArgumentList.Add("--warmup");
            info.ArgumentList.Add($"{warmupSeconds}");
        }

        // The server's CPUs: the ones LoadGen is not on when pinned apart, every CPU otherwise.
        await using var profile = options.Profile ? await Profile.StartAsync(options, cpus is null ? null : options.ServerCpus, label) : null;
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start LoadGen");
        var stderr = WatchWindowAsync(process.StandardError, server);
        var stdout = process.StandardOutput.ReadToEndAsync();
        long peak = 0;
        var limit = Stopwatch.StartNew();
        while (!process.HasExited)
        {
            peak = Math.Max(peak, server.RssBytes());
            if (limit.Elapsed > TimeSpan.FromMinutes(10))
            {
                process.Kill();
                throw new TimeoutException($"LoadGen {string.Join(' ', arguments)} ran over 10 minutes");
            }

            await Task.WhenAny(process.WaitForExitAsync(), Task.Delay(200));
        }

        await process.WaitForExitAsync();
        var (window, errors) = await stderr;
        var line = (await stdout).Split('\n').LastOrDefault(l => l.StartsWith('{'));
        if (line is null)
        {
            throw new InvalidOperationException($"LoadGen {string.Join(' ', arguments)} printed no result (exit {process.ExitCode}): {errors}");
        }

        using var document = JsonDocument.Parse(line);
        if (profile is not null)
        {
            await profile.StopAsync(document.RootElement.TryGetProperty("rps", out var rps) ? rps.GetDouble() : 0);
        }

        return new LoadResult(document.RootElement.Clone(), window, peak / 1048576.0, warmupSeconds, process.ExitCode);
    }

    /// <summary>Reads LoadGen's stderr to its end: what the server used between the window's marks, and every other line.</summary>
    private static async Task<(ServerUsage? Window, string Errors)> WatchWindowAsync(StreamReader stderr, ServerProcess server)
    {
        ServerUsage? opened = null, window = null;
        var errors = new StringBuilder();
        while (await stderr.ReadLineAsync() is { } line)
        {
            switch (line)
            {
                case Measuring:
                    opened = server.Usage();
                    break;
                case Measured when opened is { } start:
                    window = server.Usage().Since(start);
                    break;
                default:
                    errors.AppendLine(line);
                    break;
            }
        }

        return (window, errors.ToString());
    }
}
