using System.Globalization;
using System.Text;

namespace Gateway.Lab;

/// <summary>
/// One goal of the issue (or a ratio shown beside one, with no target), judged from one run's rows, or from the
/// median of its ratios in the interleaved rounds.
/// </summary>
internal sealed record Goal(string Id, string Claim, double? Ratio, double? Target, string Measured, bool LowerIsBetter = false)
{
    /// <summary>The ratio in each interleaved round, when the goal's cells were measured in rounds (<see cref="Ratio"/> is their median).</summary>
    public IReadOnlyList<double> PerRound { get; init; } = [];

    public string Verdict => Target is not { } target ? "no target"
        : Ratio is not { } ratio ? "not measured"
        : (LowerIsBetter ? ratio <= target : ratio >= target) ? "met"
        : LowerIsBetter ? $"missed by {(ratio / target - 1) * 100:0}%" : $"missed by {(1 - ratio / target) * 100:0}%";

    public string RatioText => Ratio is not { } ratio ? "—" : ratio.ToString("0.00", CultureInfo.InvariantCulture);

    /// <summary>The rounds' range beside the median, or how the ratio was measured.</summary>
    public string Spread => PerRound.Count switch
    {
        0 => "single run",
        1 => "single run (1 round)",
        _ => FormattableString.Invariant($"{PerRound.Min():0.00}–{PerRound.Max():0.00} ({PerRound.Count} rounds)"),
    };
}

/// <summary>bench/results/latest.md: the machine, the calibration, the goals, a table and a chart per scenario.</summary>
internal static class Report
{
    /// <summary>Writes latest.md (with the scenarios that failed, if any), summary.md and the charts; returns how many charts.</summary>
    public static async Task<int> WriteAsync(Results results, string output, IReadOnlyList<string> failures)
    {
        var charts = Charts.Draw(results, output);
        var markdown = Markdown(results, charts);
        if (failures.Count > 0)
        {
            markdown += "\n## Scenarios that failed in this run\n\n" + string.Concat(failures.Select(f => $"* {f}\n"));
        }

        await File.WriteAllTextAsync(Path.Combine(output, "latest.md"), markdown);
        await File.WriteAllTextAsync(Path.Combine(output, "summary.md"), Summary(results.Rows));
        return charts.Count;
    }

    /// <summary>
    /// The goals: those whose cells were measured in interleaved rounds as the median of the per-round ratios (each
    /// round's model against that round's anchor), the rest from the matrix's single runs.
    /// </summary>
    public static IReadOnlyList<Goal> Goals(Results results)
    {
        // P3's best model is chosen once, by its median round, and followed through every round.
        var echoModel = BestEcho(results.Rows)?.Model;
        var goals = Goals(results.Rows, echoModel);
        var rounds = (results.Rounds ?? []).Where(r => r.HasFigure).GroupBy(r => r.Round).Select(round => Goals([.. round], echoModel)).ToList();
        return [.. goals.Select(goal =>
        {
            var ratios = rounds.Select(round => round.First(g => g.Id == goal.Id).Ratio).OfType<double>().ToList();
            return ratios.Count == 0 ? goal : goal with { Ratio = Median(ratios), PerRound = ratios };
        })];
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static Row? BestEcho(IEnumerable<Row> rows, string? model = null) =>
        rows.Where(r => r.Scenario == "echo-64" && r.Connections == 16 && !IsAnchor(r.Model) && (model is null || r.Model == model)).MaxBy(r => r.Rps);

    private static IReadOnlyList<Goal> Goals(IReadOnlyList<Row> rows, string? echoModel)
    {
        Row? Find(string model, string scenario, Func<Row, bool>? where = null) =>
            rows.FirstOrDefault(r => r.Model == model && r.Scenario == scenario && r.HasFigure && (where?.Invoke(r) ?? true));
        Row? Best(string scenario, Func<Row, double> by, Func<Row, bool>? where = null) =>
            rows.Where(r => r.Scenario == scenario && !IsAnchor(r.Model) && (where?.Invoke(r) ?? true)).MaxBy(by);
        double? Ratio(double? a, double? b) => a is { } x && b is { } y && y > 0 ? x / y : null;

        var ping16 = (Func<Row, bool>)(r => r.Connections == 16);
        var ping1 = (Func<Row, bool>)(r => r.Connections == 1);
        var inProcess = (Func<Row, bool>)(r => r.Model != "kestrel");
        var bestPing = Best("ping", r => r.Rps, r => ping16(r) && inProcess(r));
        var kestrelPing = Find("kestrel", "ping", ping16);
        var redisPing = Find("redis", "ping", ping16);
        var (bestPing1, redisPing1) = (Best("ping", r => r.Rps, ping1), Find("redis", "ping", ping1));
        var bestPipe = Best("pipelined", r => r.Rps);
        var redisPipe = Find("redis", "pipelined");
        var echo = BestEcho(rows, echoModel);
        var bulk = Best("echo-bulk", r => r.Mbps);
        var iperf = Find("iperf3", "echo-bulk");
        // Goals P5a and P5b: a quiet server's PSS per idle connection, the larger of its two counts (all held).
        Row? Quiet(string model) => rows.Where(r => r.Model == model && r.Scenario == "memory-quiet" && r.KibPerIdle is not null && !r.Partial)
            .ToList() is { Count: var held } quiet && held == Comparison.QuietCounts.Length ? quiet.MaxBy(r => r.KibPerIdle) : null;
        var (epollMemory, kestrelMemory, redisMemory) = (Quiet("epoll"), Quiet("kestrel"), Quiet("redis"));
        var fewIdle = Find("epoll", "idle", r => r.Idle == 10);
        var manyIdle = Find("epoll", "idle", r => r.Idle == 10_000);
        var noCrowd = Find(Comparison.CrowdModel, "idle", r => r.Idle == 0);
        var crowd = Find(Comparison.CrowdModel, "idle", r => r.Idle == Comparison.CrowdSize && !r.Partial);
        var crowdMemory = rows.FirstOrDefault(r => r.Model == Comparison.CrowdModel && r.Scenario == "memory");
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
            new("P1", "RPC ping, 16 connections: best in-process model ≥ 1.0× Redis PING", Ratio(bestPing?.Rps, redisPing?.Rps), 1.0, $"{bestPing?.Model}: {Rps(bestPing)} vs {Rps(redisPing)}"),
            new("P1k", "RPC ping, 16 connections: kestrel ≥ 0.8× Redis PING", Ratio(kestrelPing?.Rps, redisPing?.Rps), 0.8, $"{Rps(kestrelPing)} vs {Rps(redisPing)}"),
            new("P1b", "RPC ping, 1 connection: best model ≥ 1.0× Redis PING", Ratio(bestPing1?.Rps, redisPing1?.Rps), 1.0, $"{bestPing1?.Model}: {Rps(bestPing1)} vs {Rps(redisPing1)}"),
            new("P1c", "RPC ping, 16 connections: the P1 model's p99 ≤ 1.5× Redis's", Ratio(bestPing?.P99Us, redisPing?.P99Us), 1.5,
                $"{bestPing?.Model}: {bestPing?.P99Us:N0} vs {redisPing?.P99Us:N0} µs", LowerIsBetter: true),
            new("P2", "pipelined (16 × 16): best model ≥ 1.0× Redis pipelined", Ratio(bestPipe?.Rps, redisPipe?.Rps), 1.0, $"{bestPipe?.Model}: {Rps(bestPipe)} vs {Rps(redisPipe)}"),
            new("P3", "echo 64 B, best model ≥ 1.2× Redis PING (16 connections)", Ratio(echo?.Rps, redisPing?.Rps), 1.2, $"{echo?.Model}: {Rps(echo)} vs {Rps(redisPing)}"),
            new("P4", "bulk echo, best model ≥ 0.5× iperf3", Ratio(bulk?.Mbps, iperf?.Mbps), 0.5, $"{bulk?.Model}: {Mbps(bulk)} vs {Mbps(iperf)}"),
            new("P5a", "epoll: ≤ 1.4 KiB PSS per idle connection of a quiet server (10k and 19k idle)", epollMemory?.KibPerIdle, 1.4,
                $"{epollMemory?.KibPerIdle:0.00} KiB at {epollMemory?.Idle:N0} (Redis {redisMemory?.KibPerIdle:0.00})", LowerIsBetter: true),
            new("P5b", "kestrel: ≤ 3 KiB PSS per idle connection of a quiet server (10k and 19k idle)", kestrelMemory?.KibPerIdle, 3.0,
                $"{kestrelMemory?.KibPerIdle:0.00} KiB at {kestrelMemory?.Idle:N0}", LowerIsBetter: true),
            new("P6", "epoll p50 among 10k idle within 1.2× of among 10", Ratio(manyIdle?.P50Us, fewIdle?.P50Us), 1.2,
                $"p50 {manyIdle?.P50Us:0} vs {fewIdle?.P50Us:0} us (p99 {manyIdle?.P99Us:0} vs {fewIdle?.P99Us:0} us)", LowerIsBetter: true),
            new("P5c", $"{Comparison.CrowdSize:N0} idle held across {Comparison.CrowdWorkers} prefork async workers: 16 active clients' p99 ≤ 1.5× with no crowd", Ratio(crowd?.P99Us, noCrowd?.P99Us), 1.5,
                $"p99 {crowd?.P99Us:N0} vs {noCrowd?.P99Us:N0} µs (p50 {crowd?.P50Us:N0} vs {noCrowd?.P50Us:N0}); {crowdMemory?.KibPerIdle:0.00} KiB per idle connection over the process tree", LowerIsBetter: true),
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
        // The design's order of models, then the anchors (a merged run appends its rows at the end).
        var order = ModelConfig.All(workers: 2).Select(m => m.Name).ToList();
        var models = rows.Select(r => r.Model).Where(m => m is not ("iperf3" or "vsftpd" or "epoll-1core" or Comparison.CrowdModel)).Distinct()
            .OrderBy(IsAnchor).ThenBy(m => order.IndexOf(m) is >= 0 and var at ? at : int.MaxValue);
        foreach (var model in models)
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
        // Results written before the settling check (no warm-up recorded) say only what they measured.
        var settling = m.Warmup == 0 ? "" : FormattableString.Invariant(
            $" of {m.Warmup} s or more; a run whose last warm-up second is not within {LoadResult.SettledWithin * 100:0} % of the measured rate is measured once more on the same server, and its note says so (\"measured twice\", or \"not settled\" when the second run was not settled either). Server CPU and context switches are read over the measured window only");
        text.AppendLine(CultureInfo.InvariantCulture, $"Each run measures {m.Seconds} s after a warm-up{settling}. Figures move from run to run on a shared machine, ratios within one run hold better. Reproduce: `bench/run{(m.Mode == "quick" ? " --quick" : "")}`.");
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

        var goals = Goals(results);
        var rounds = results.Rounds?.Max(r => r.Round) ?? 0;
        text.AppendLine("## Goals (ratios from this run)");
        text.AppendLine();
        text.AppendLine(rounds switch
        {
            0 => "Every ratio from single runs.",
            1 => "Every ratio from single runs: one round of the goal cells (`--rounds 3` or more for medians).",
            _ => $"Ratios against Redis (P1–P3 and those beside them) are the median of {rounds} interleaved rounds — Redis, then each model, then again; a fresh server per model and round — each round's model against that round's Redis, with the rounds' range beside it; the matrix below holds each cell's median round. The rest are single runs.",
        });
        text.AppendLine();
        text.AppendLine("| | goal | ratio | range | measured | verdict |");
        text.AppendLine("|---|---|---|---|---|---|");
        foreach (var goal in goals)
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"| {goal.Id} | {goal.Claim} | {goal.RatioText} | {goal.Spread} | {goal.Measured} | {goal.Verdict} |");
        }

        Rounds(text, results.Rounds ?? []);
        Warmup(text, results.Warmups ?? [], charts);

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
        ("idle", "4. Four active clients among N idle connections (5c: 16 among 100,000 across six prefork workers)"),
        ("memory", "5. Memory per idle connection, under load: peak RSS beside four active clients, from 10 idle to N"),
        ("memory-quiet", "5q. Memory per idle connection, quiet: PSS growth of a fresh server while N idle connections are held, no load (goals P5a, P5b)"),
        ("work", "6. CPU-bound `work` RPC (~1 ms of SHA-256)"),
        ("churn", "7. Connection churn: connect, one ping, close"),
        ("ftp-stor", "8a. FTP STOR through curl"),
        ("ftp-stor-durable", "8b. FTP STOR, vsftpd's time with an fsync after"),
        ("ftp-retr", "8c. FTP RETR through curl"),
    ];

    public static IEnumerable<(string Scenario, string Title)> ScenarioTitles => Scenarios;

    private static string CpuPerRequest(Row r) =>
        r.CpuUsPerRequest is { } cpu ? FormattableString.Invariant($"{cpu:0.0} ({r.UserUsPerRequest:0.0})") : "";

    /// <summary>The goal cells round by round: each model's rate in every round, and its ratio to that round's Redis.</summary>
    private static void Rounds(StringBuilder text, IReadOnlyList<Row> rows)
    {
        var rounds = rows.Select(r => r.Round ?? 0).Distinct().Order().ToList();
        if (rounds.Count < 2)
        {
            return;
        }

        // Echo has no Redis counterpart of its own: its anchor is Redis PING at 16 connections (goal P3).
        Row? Anchor(Row r) => rows.FirstOrDefault(a => a.Model == "redis" && a.Round == r.Round && a.HasFigure
            && a.Scenario == (r.Scenario == "echo-64" ? "ping" : r.Scenario) && a.Connections == r.Connections);
        text.AppendLine();
        text.AppendLine("### The goal cells round by round (req/s, and × that round's Redis)");
        text.AppendLine();
        text.AppendLine($"| model | cell | {string.Join(" | ", rounds.Select(n => $"round {n}"))} | CPU µs/req (user), cs/req: median |");
        text.AppendLine($"|---|---|{string.Concat(rounds.Select(_ => "---|"))}---|");
        foreach (var cell in rows.GroupBy(r => (r.Model, r.Scenario, r.Connections, r.Pipeline)))
        {
            var figures = rounds.Select(n => cell.FirstOrDefault(r => r.Round == n && r.HasFigure) is { } r
                ? FormattableString.Invariant($"{r.Rps:N0}{(r.Model != "redis" && Anchor(r) is { } a ? $" = {r.Rps / a.Rps:0.00}×" : "")}") : "—");
            var measured = cell.Where(r => r.CpuUsPerRequest is not null).ToList();
            var cost = measured.Count == 0 ? "" : FormattableString.Invariant(
                $"{Median([.. measured.Select(r => r.CpuUsPerRequest ?? 0)]):0.0} ({Median([.. measured.Select(r => r.UserUsPerRequest ?? 0)]):0.0}), {Median([.. measured.Select(r => r.ContextSwitchesPerRequest ?? 0)]):0.00}");
            text.AppendLine(CultureInfo.InvariantCulture, $"| {cell.Key.Model} | {CellName(cell.Key.Scenario, cell.Key.Connections, cell.Key.Pipeline)} | {string.Join(" | ", figures)} | {cost} |");
        }
    }

    private static string CellName(string scenario, int connections, int pipeline) => scenario switch
    {
        "pipelined" => $"pipelined {connections}×{pipeline}",
        "echo-64" => $"echo 64 B, {connections} conns",
        _ => $"{scenario}, {connections} conn{(connections == 1 ? "" : "s")}",
    };

    /// <summary>A fresh server's first seconds, per model: the chart and, over the rounds, the figures the warm-up goal reads.</summary>
    private static void Warmup(StringBuilder text, IReadOnlyList<WarmupCurve> curves, IReadOnlyDictionary<string, string> charts)
    {
        if (curves.Count == 0)
        {
            return;
        }

        text.AppendLine();
        text.AppendLine("## Warm-up: a fresh server's first seconds (RPC ping, 16 connections)");
        text.AppendLine();
        text.AppendLine(CultureInfo.InvariantCulture, $"Replies in each second from the first request to a server just started (LoadGen `--warmup 0 --timeline 1`), against the steady rate the same server measured right after at the same load (settled, as above). The goal: ≥ {WarmupCurve.Share:0.0} of steady within {WarmupCurve.GoalSeconds} s of the first request. Medians over the rounds; \"seconds to {WarmupCurve.Share:0.0}\": the first second that reaches it, in each round. Redis has nothing to warm up: what ramp it shows is the load generator's own (a fresh .NET process too) and the machine's.");
        text.AppendLine();
        if (charts.TryGetValue(Charts.WarmupChart, out var chart))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"![warm-up]({chart})");
            text.AppendLine();
        }

        text.AppendLine($"| model | 1st second | 2nd second | steady | 1st / steady | 2nd / steady | seconds to {WarmupCurve.Share:0.0} of steady | ≥ {WarmupCurve.Share:0.0} within {WarmupCurve.GoalSeconds} s |");
        text.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var model in curves.GroupBy(c => c.Model))
        {
            double At(WarmupCurve c, int second) => c.PerSecond.Count >= second ? c.PerSecond[second - 1] : 0;
            var steady = Median([.. model.Select(c => c.Steady)]);
            var (first, second) = (Median([.. model.Select(c => At(c, 1))]), Median([.. model.Select(c => At(c, 2))]));
            var seconds = model.Select(c => c.SecondsToSteady is { } n ? $"{n}" : $"> {c.PerSecond.Count}").ToList();
            var met = model.Count(c => c.SecondsToSteady <= WarmupCurve.GoalSeconds);
            text.AppendLine(CultureInfo.InvariantCulture,
                $"| {model.Key} | {first:N0} | {second:N0} | {steady:N0} | {first / steady:0.00} | {second / steady:0.00} | {string.Join(", ", seconds)} | {(met == model.Count() ? "met" : "missed")} ({met} of {model.Count()}) |");
        }
    }

    private static void Table(StringBuilder text, List<Row> rows, string scenario)
    {
        var memory = scenario == "memory";
        text.AppendLine(memory
            ? "| model | idle | server RSS MB | KiB per idle connection |"
            : "| model | conns | pipeline | idle | bytes | req/s | Mb/s | p50 µs | p90 µs | p99 µs | p99.9 µs | CPU µs/req (user) | cs/req | server RSS MB | note |");
        text.AppendLine(memory ? "|---|---|---|---|" : "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in rows)
        {
            text.AppendLine(memory
                ? FormattableString.Invariant($"| {r.Model} | {r.Idle:N0} | {r.ServerRssMb:0.0} | {r.KibPerIdle:0.00} |")
                : !r.HasFigure && r.Note is not null
                    ? FormattableString.Invariant($"| {r.Model} | {r.Connections} | | | | | | | | | | | | | {r.Note} |")
                    : FormattableString.Invariant($"| {r.Model} | {r.Connections:N0} | {r.Pipeline} | {r.Idle:N0} | {r.MessageBytes:N0} | {r.Rps:N0} | {r.Mbps:N1} | {r.P50Us:N0} | {r.P90Us:N0} | {r.P99Us:N0} | {r.P999Us:N0} | {CpuPerRequest(r)} | {r.ContextSwitchesPerRequest:0.00} | {r.ServerRssMb:0.0} | {r.Note} |"));
        }
    }
}
