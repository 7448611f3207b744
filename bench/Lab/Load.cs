using System.Diagnostics;
using System.Text.Json;

namespace Gateway.Lab;

/// <summary>One LoadGen run's figures (its JSON line), with the server's CPU and peak memory over the run.</summary>
internal sealed record LoadResult(JsonElement Report, double ServerCpuSeconds, double ServerRssMb, int ExitCode = 0)
{
    public double Get(string field) => Report.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.Number ? value.GetDouble() : 0;

    /// <summary>A row for this run: LoadGen's throughput and latency, the server's CPU and memory.</summary>
    public Row ToRow(string model, string scenario, int idle = 0, string? note = null) => new(model, scenario)
    {
        // LoadGen exits non-zero when a connection failed or an idle one was closed: the figures are partial.
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
        ServerCpuS = Math.Round(ServerCpuSeconds, 2),
        ServerRssMb = Math.Round(ServerRssMb, 1),
    };
}

/// <summary>Runs bench/LoadGen as its own process (pinned apart from the server when the scenario says so).</summary>
internal sealed class Load(LabOptions options)
{
    private string LoadGenDll => Path.Combine(options.Root, "bench/LoadGen/bin/Release/net10.0/LoadGen.dll");

    /// <summary>
    /// Runs LoadGen with <paramref name="arguments"/> (plus the lab's duration and warm-up unless given) against
    /// <paramref name="server"/>, sampling the server's memory every 200 ms; the row's memory is the peak.
    /// </summary>
    /// With <c>--profile</c>, the server's CPU is profiled over the run and the report is named by <paramref name="label"/>.
    public async Task<LoadResult> RunAsync(ServerProcess server, string? cpus, int warmup, string label, params string[] arguments)
    {
        var info = Pinned.Command(cpus, "dotnet", [LoadGenDll, .. arguments]);
        if (!arguments.Contains("--duration"))
        {
            info.ArgumentList.Add("--duration");
            info.ArgumentList.Add($"{options.Seconds}");
        }

        if (!arguments.Contains("--warmup"))
        {
            info.ArgumentList.Add("--warmup");
            info.ArgumentList.Add($"{Math.Max(warmup, options.Warmup)}");
        }

        // The server's CPUs: the ones LoadGen is not on when pinned apart, every CPU otherwise.
        await using var profile = options.Profile ? await Profile.StartAsync(options, cpus is null ? null : options.ServerCpus, label) : null;
        var cpuBefore = server.CpuSeconds();
        using var process = Process.Start(info) ?? throw new InvalidOperationException("could not start LoadGen");
        var stderr = process.StandardError.ReadToEndAsync();
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
        var cpu = server.CpuSeconds() - cpuBefore;
        var line = (await stdout).Split('\n').LastOrDefault(l => l.StartsWith('{'));
        if (line is null)
        {
            throw new InvalidOperationException($"LoadGen {string.Join(' ', arguments)} printed no result (exit {process.ExitCode}): {await stderr}");
        }

        using var document = JsonDocument.Parse(line);
        if (profile is not null)
        {
            await profile.StopAsync(document.RootElement.TryGetProperty("rps", out var rps) ? rps.GetDouble() : 0);
        }

        return new LoadResult(document.RootElement.Clone(), cpu, peak / 1048576.0, process.ExitCode);
    }
}
