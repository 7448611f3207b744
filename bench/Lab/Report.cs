using System.Globalization;
using System.Text;

namespace Gateway.Lab;

/// <summary>One goal of the issue, judged from the rows of one run.</summary>
internal sealed record Goal(string Id, string Claim, double? Ratio, double Target, string Measured, bool LowerIsBetter = false)
{
    public string Verdict => Ratio is not { } ratio ? "not measured"
        : (LowerIsBetter ? ratio <= Target : ratio >= Target) ? "met"
        : LowerIsBetter ? $"missed by {(ratio / Target - 1) * 100:0}%" : $"missed by {(1 - ratio / Target) * 100:0}%";
}

/// <summary>bench/results/latest.md: the machine, the calibration, the goals, a table and a chart per scenario.</summary>
internal static class Report
{
    /// <summary>Writes latest.md (with the scenarios that failed, if any), summary.md and the charts; returns how many charts.</summary>
    public static async Task<int> WriteAsync(Results results, string output, IReadOnlyList<string> failures)
    {
        var charts = Charts.Draw(results.Rows, output);
        var markdown = Markdown(results, charts);
        if (failures.Count > 0)
        {
            markdown += "\n## Scenarios that failed in this run\n\n" + string.Concat(failures.Select(f => $"* {f}\n"));
        }

        await File.WriteAllTextAsync(Path.Combine(output, "latest.md"), markdown);
        await File.WriteAllTextAsync(Path.Combine(output, "summary.md"), Summary(results.Rows));
        return charts.Count;
    }

    public static IReadOnlyList<Goal> Goals(IReadOnlyList<Row> rows)
    {
        Row? Find(string model, string scenario, Func<Row, bool>? where = null) =>
            rows.FirstOrDefault(r => r.Model == model && r.Scenario == scenario && r.HasFigure && (where?.Invoke(r) ?? true));
        Row? Best(string scenario, Func<Row, double> by, Func<Row, bool>? where = null) =>
            rows.Where(r => r.Scenario == scenario && !IsAnchor(r.Model) && (where?.Invoke(r) ?? true)).MaxBy(by);
        double? Ratio(double? a, double? b) => a is { } x && b is { } y && y > 0 ? x / y : null;

        var ping16 = (Func<Row, bool>)(r => r.Connections == 16);
        var kestrelPing = Find("kestrel", "ping", ping16);
        var redisPing = Find("redis", "ping", ping16);
        var kestrelPipe = Find("kestrel", "pipelined");
        var redisPipe = Find("redis", "pipelined");
        var echo = Best("echo-64", r => r.Rps, r => r.Connections == 16);
        var bulk = Best("echo-bulk", r => r.Mbps);
        var iperf = Find("iperf3", "echo-bulk");
        var epollMemory = rows.FirstOrDefault(r => r.Model == "epoll" && r.Scenario == "memory" && r.Idle == 10_000);
        var kestrelMemory = rows.FirstOrDefault(r => r.Model == "kestrel" && r.Scenario == "memory" && r.Idle == 10_000);
        var fewIdle = Find("epoll", "idle", r => r.Idle == 10);
        var manyIdle = Find("epoll", "idle", r => r.Idle == 10_000);
        // Gateway answers 226 to a STOR once the file is on disk; vsftpd once it is in the page cache: the fair
        // anchor for an upload is vsftpd's transfer plus an fsync after it.
        var ftpStor = (Find("kestrel", "ftp-stor"), Find("vsftpd", "ftp-stor-durable"));
        var ftpRetr = (Find("kestrel", "ftp-retr"), Find("vsftpd", "ftp-retr"));
        var prefork = Find("prefork", "work");
        var single = Find("epoll-1core", "work");
        string Rps(Row? row) => row is null ? "—" : $"{row.Rps:N0}/s";
        string Mbps(Row? row) => row is null ? "—" : $"{row.Mbps:N0} Mb/s";
        var ftpRatio = Ratio(ftpStor.Item1?.Mbps, ftpStor.Item2?.Mbps) is { } stor && Ratio(ftpRetr.Item1?.Mbps, ftpRetr.Item2?.Mbps) is { } retr ? Math.Min(stor, retr) : (double?)null;
        return
        [
            new("P1", "RPC ping, 16 connections: kestrel ≥ 1.0× Redis PING", Ratio(kestrelPing?.Rps, redisPing?.Rps), 1.0, $"{Rps(kestrelPing)} vs {Rps(redisPing)}"),
            new("P2", "pipelined (16 × 16): kestrel ≥ 1.0× Redis pipelined", Ratio(kestrelPipe?.Rps, redisPipe?.Rps), 1.0, $"{Rps(kestrelPipe)} vs {Rps(redisPipe)}"),
            new("P3", "echo 64 B, best model ≥ 1.0× Redis PING (16 connections)", Ratio(echo?.Rps, redisPing?.Rps), 1.0, $"{echo?.Model}: {Rps(echo)} vs {Rps(redisPing)}"),
            new("P4", "bulk echo, best model ≥ 0.5× iperf3", Ratio(bulk?.Mbps, iperf?.Mbps), 0.5, $"{bulk?.Model}: {Mbps(bulk)} vs {Mbps(iperf)}"),
            new("P5a", "epoll: ≤ 1.4 KiB per idle connection (10k idle)", epollMemory?.KibPerIdle, 1.4, $"{epollMemory?.KibPerIdle:0.00} KiB", LowerIsBetter: true),
            new("P5b", "kestrel: ≤ 2 KiB per idle connection (10k idle)", kestrelMemory?.KibPerIdle, 2.0, $"{kestrelMemory?.KibPerIdle:0.00} KiB", LowerIsBetter: true),
            new("P6", "epoll p50 among 10k idle within 1.2× of among 10", Ratio(manyIdle?.P50Us, fewIdle?.P50Us), 1.2,
                $"p50 {manyIdle?.P50Us:0} vs {fewIdle?.P50Us:0} us (p99 {manyIdle?.P99Us:0} vs {fewIdle?.P99Us:0} us)", LowerIsBetter: true),
            new("P7", "FTP through curl ≥ 1.0× vsftpd (the lower of STOR and RETR; STOR against vsftpd's with an fsync, as Gateway's 226 waits for one)", ftpRatio, 1.0,
                $"STOR {Mbps(ftpStor.Item1)} vs {Mbps(ftpStor.Item2)}, RETR {Mbps(ftpRetr.Item1)} vs {Mbps(ftpRetr.Item2)}"),
            new("P8", $"`work`: prefork ({Comparison.Workers} workers) ≥ 1.6× a single reactor", Ratio(prefork?.Rps, single?.Rps), 1.6, $"{Rps(prefork)} vs {Rps(single)}"),
        ];
    }

    /// <summary>
    /// One line per model across the scenarios (the README's Comparison table): ping and echo at 16 connections
    /// (or all a model serves), pipelined, bulk, churn, median latency among 10 and 10k idle, memory per idle.
    /// </summary>
    public static string Summary(IReadOnlyList<Row> rows)
    {
        Row? Cell(string model, string scenario, Func<Row, bool>? where = null) =>
            rows.Where(r => r.Model == model && r.Scenario == scenario && r.HasFigure && (where?.Invoke(r) ?? true))
                .OrderByDescending(r => r.Connections == 16).FirstOrDefault();
        static string N(double? value, string format = "N0") => value is { } v ? v.ToString(format, CultureInfo.InvariantCulture) : "—";
        static string Conns(Row? row) => row is { Connections: not 16 } ? $" ({row.Connections} conn)" : "";
        var text = new StringBuilder();
        text.AppendLine("| model | ping, 16 conns (req/s) | pipelined 16×16 | echo 64 B | bulk echo (Mb/s) | churn (conn/s) | p50 µs, 4 active among 10 → 10k idle | KiB per idle conn |");
        text.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var model in rows.Select(r => r.Model).Where(m => m is not ("iperf3" or "vsftpd" or "epoll-1core")).Distinct())
        {
            var ping = Cell(model, "ping");
            var echo = Cell(model, "echo-64");
            var few = Cell(model, "idle", r => r.Idle == 10);
            // Among 10k idle, or among as many as the model holds (select, threads), said so.
            var many = rows.Where(r => r.Model == model && r.Scenario == "idle" && r.Rps > 0 && r.Idle is > 10 and <= 10_000).MaxBy(r => r.Idle);
            var idle = few is null ? "—" : $"{N(few.P50Us)} → {(many is null ? "—" : N(many.P50Us))}{(many is { Idle: < 10_000 } ? $" ({many.Idle:N0} idle: its limit)" : "")}";
            var memory = rows.Where(r => r.Model == model && r.Scenario == "memory" && r.Idle <= 10_000).MaxBy(r => r.Idle)?.KibPerIdle;
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {(IsAnchor(model) ? $"**{model}**" : model)} | {N(ping?.Rps)}{Conns(ping)} | {N(Cell(model, "pipelined")?.Rps)} | {N(echo?.Rps)}{Conns(echo)} | {N(Cell(model, "echo-bulk")?.Mbps)} | {N(Cell(model, "churn")?.Rps)} | {idle} | {N(memory, "0.0")} |");
        }

        if (Cell("iperf3", "echo-bulk") is { } iperf)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| **iperf3** (one stream, one way) | | | | {N(iperf.Mbps)} | | | |");
        }

        return text.ToString();
    }

    public static bool IsAnchor(string model) => model is "redis" or "redis PING" or "iperf3" or "vsftpd";

    public static string Markdown(Results results, IReadOnlyDictionary<string, string> charts)
    {
        var m = results.Machine;
        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"# Gateway: the server models compared ({m.Mode} run, {m.Date})");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Machine: {m.Cpu}, {m.Cores} cores, {m.MemoryGib:0} GiB, Linux {m.Kernel}, .NET {m.Dotnet}, {m.Redis}.");
        text.AppendLine(m.Pinned
            ? "Servers run pinned to CPU 0 and the load generator to CPU 1 (`taskset`), so a server never competes with its load for a core — except in the CPU-bound `work` scenario, where the question is how a design uses both cores and nothing is pinned (but the single-reactor row, pinned to one core)."
            : "One core: nothing pinned; servers and load generator share it.");
        text.AppendLine(CultureInfo.InvariantCulture, $"Each run measures {m.Seconds} s after a warm-up; figures move from run to run on a shared machine, ratios within one run hold better. Reproduce: `bench/run{(m.Mode == "quick" ? " --quick" : "")}`.");
        foreach (var again in results.Remeasured ?? [])
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"Measured again after the run: {again}.");
        }

        text.AppendLine();
        if (results.Calibration is { } calibration)
        {
            text.AppendLine(CultureInfo.InvariantCulture,
                $"**LoadGen calibration**: against the same Redis, LoadGen's PING reached {calibration.LoadGenRps:N0}/s and `redis-benchmark -t ping_inline -c {calibration.Connections}` {calibration.RedisBenchmarkRps:N0}/s: **{calibration.Ratio:0.00}×** ({(calibration.Ratio >= 0.9 ? "≥ 0.9: the generator is not the bottleneck" : "below 0.9: the generator limits the highest figures")}).");
            text.AppendLine();
        }

        text.AppendLine("## Goals (ratios from this run)");
        text.AppendLine();
        text.AppendLine("| | goal | ratio | measured | verdict |");
        text.AppendLine("|---|---|---|---|---|");
        foreach (var goal in Goals(results.Rows))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {goal.Id} | {goal.Claim} | {(goal.Ratio is { } r ? r.ToString("0.00", CultureInfo.InvariantCulture) : "—")} | {goal.Measured} | {goal.Verdict} |");
        }

        // The analysis is written by hand from profiles (bench/run --profile) and committed beside the results.
        text.AppendLine();
        text.AppendLine("What limits each missed goal, with CPU profiles and a heap census: [bench/results/profiles](profiles/README.md).");

        foreach (var (scenario, title) in Scenarios)
        {
            var rows = results.Rows.Where(r => r.Scenario == scenario).ToList();
            if (rows.Count == 0)
            {
                continue;
            }

            text.AppendLine();
            text.AppendLine(CultureInfo.InvariantCulture, $"## {title}");
            text.AppendLine();
            if (charts.TryGetValue(scenario, out var chart))
            {
                text.AppendLine(CultureInfo.InvariantCulture, $"![{title}]({chart})");
                text.AppendLine();
            }

            Table(text, rows, scenario);
        }

        return text.ToString();
    }

    private static readonly (string Scenario, string Title)[] Scenarios =
    [
        ("ping", "1. RPC ping, one request in flight"),
        ("pipelined", "2. RPC ping pipelined, 16 in flight × 16 connections"),
        ("echo-64", "3a. Echo, 64-byte messages"),
        ("echo-bulk", "3b. Echo, 64 KiB bulk on one connection"),
        ("idle", "4. Four active clients among N idle connections"),
        ("memory", "5. Memory per idle connection"),
        ("work", "6. CPU-bound `work` RPC (~1 ms of SHA-256)"),
        ("churn", "7. Connection churn: connect, one ping, close"),
        ("ftp-stor", "8a. FTP STOR through curl"),
        ("ftp-stor-durable", "8b. FTP STOR, vsftpd's time with an fsync after"),
        ("ftp-retr", "8c. FTP RETR through curl"),
    ];

    public static IEnumerable<(string Scenario, string Title)> ScenarioTitles => Scenarios;

    private static void Table(StringBuilder text, List<Row> rows, string scenario)
    {
        var memory = scenario == "memory";
        text.AppendLine(memory
            ? "| model | idle | server RSS MB | KiB per idle connection |"
            : "| model | conns | pipeline | idle | bytes | req/s | Mb/s | p50 µs | p90 µs | p99 µs | p99.9 µs | server CPU s | server RSS MB | note |");
        text.AppendLine(memory ? "|---|---|---|---|" : "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            text.AppendLine(memory
                ? FormattableString.Invariant($"| {r.Model} | {r.Idle:N0} | {r.ServerRssMb:0.0} | {r.KibPerIdle:0.00} |")
                : !r.HasFigure && r.Note is not null
                    ? FormattableString.Invariant($"| {r.Model} | {r.Connections} | | | | | | | | | | | | {r.Note} |")
                    : FormattableString.Invariant($"| {r.Model} | {r.Connections:N0} | {r.Pipeline} | {r.Idle:N0} | {r.MessageBytes:N0} | {r.Rps:N0} | {r.Mbps:N1} | {r.P50Us:N0} | {r.P90Us:N0} | {r.P99Us:N0} | {r.P999Us:N0} | {r.ServerCpuS:0.00} | {r.ServerRssMb:0.0} | {r.Note} |"));
        }
    }
}
