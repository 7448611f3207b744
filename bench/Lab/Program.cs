using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Lab;

// The comparison lab (bench/run builds everything and starts this from the repository root): runs the
// scenarios on every model beside Redis, iperf3 and vsftpd, then writes bench/results/latest.json, latest.md
// and a chart per scenario. Every server it starts it stops, by pid, even when a scenario fails.
LabOptions? options;
try
{
    options = LabOptions.Parse(args);
}
catch (Exception e) when (e is ArgumentException or FormatException)
{
    Console.Error.WriteLine(e.Message);
    options = null;
}

if (options is null)
{
    Console.Error.WriteLine(LabOptions.Usage);
    return 2;
}

if (options.RedrawFrom is { } from)
{
    Directory.CreateDirectory(options.Output);
    await Report.WriteAsync(await Results.ReadAsync(from), options.Output, []);
    return 0;
}

var started = Stopwatch.StartNew();
var comparison = new Comparison(options, new Servers(options), new Load(options));
var steps = new (string Scenario, Func<Task> Run)[]
{
    ("calibration", comparison.CalibrateAsync),
    (LabOptions.GoalRounds, comparison.GoalRoundsAsync),
    ("ping", comparison.PingAsync),
    ("pipelined", comparison.PipelinedAsync),
    ("echo", comparison.EchoAsync),
    ("idle", comparison.IdleAsync),
    ("work", comparison.WorkAsync),
    ("churn", comparison.ChurnAsync),
    ("ftp", comparison.FtpAsync),
};
var failures = new List<string>();
foreach (var (scenario, run) in steps.Where(s => options.Runs(s.Scenario)))
{
    try
    {
        await run();
    }
    catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException or JsonException or FormatException)
    {
        // One scenario failing (a tool missing, a model crashing) must not lose the others' figures.
        failures.Add($"{scenario}: {e.Message}");
        Console.Error.WriteLine($"scenario {scenario} failed: {e.Message}");
    }
}

Directory.CreateDirectory(options.Output);
var results = new Results(Machine.Describe(options), comparison.Calibration, comparison.Rows)
{
    Rounds = comparison.RoundRows.Count > 0 ? comparison.RoundRows : null,
    Warmups = comparison.Warmups.Count > 0 ? comparison.Warmups : null,
};
if (options.MergeInto is { } into)
{
    // The earlier run with the re-measured cells replaced: rows of the chosen models in the scenarios just run.
    var earlier = await Results.ReadAsync(into);
    var models = comparison.Rows.Select(r => r.Model).ToHashSet();
    var scenarios = comparison.Rows.Select(r => r.Scenario).ToHashSet();
    if (scenarios.Contains("idle"))
    {
        scenarios.Add("memory"); // derived from the idle rows: an old one must not outlive them
    }

    results = earlier with
    {
        Rows = [.. earlier.Rows.Where(r => !(models.Contains(r.Model) && scenarios.Contains(r.Scenario))), .. comparison.Rows],
        // A goal's ratios pair runs of one round, so new rounds replace the earlier ones whole.
        Rounds = results.Rounds ?? earlier.Rounds,
        Warmups = results.Warmups ?? earlier.Warmups,
        Remeasured = [.. earlier.Remeasured ?? [], $"{string.Join(", ", scenarios.Order())} for {string.Join(", ", models.Order())} at {results.Machine.Date}"],
    };
}

await File.WriteAllTextAsync(Path.Combine(options.Output, "latest.json"), JsonSerializer.Serialize(results, LabJson.Default.Results));
var charts = await Report.WriteAsync(results, options.Output, failures);
Console.Error.WriteLine($"wrote {options.Output}/latest.json, latest.md and {charts} charts in {started.Elapsed.TotalMinutes:0.0} min");
foreach (var goal in Report.Goals(results))
{
    Console.Error.WriteLine($"  {goal.Id,-5} {goal.Verdict,-16} {goal.Claim}: {goal.RatioText} ({goal.Measured})");
}

return failures.Count == 0 ? 0 : 1;

/// <summary>What the report says about the machine it ran on.</summary>
internal static partial class Machine
{
    public static MachineInfo Describe(LabOptions options)
    {
        var cpu = Read("/proc/cpuinfo").Split('\n').FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
        var memory = MemTotal().Match(Read("/proc/meminfo")) is { Success: true } match
            ? double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture) / 1048576 : 0;
        var kernel = Read("/proc/sys/kernel/osrelease").Trim();
        return new MachineInfo(cpu, Environment.ProcessorCount, Math.Round(memory, 1), kernel, Environment.Version.ToString(),
            Command("redis-server", "--version").Split(' ').Take(3).Aggregate((a, b) => $"{a} {b}"),
            DateTime.UtcNow.ToString("yyyy-MM-dd HH:mm 'UTC'", CultureInfo.InvariantCulture), options.Pinned, options.Quick ? "quick" : "full", options.Seconds, options.Warmup);
    }

    private static string Read(string path) => File.Exists(path) ? File.ReadAllText(path) : "";

    private static string Command(string file, string argument)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo(file, [argument]) { RedirectStandardOutput = true, UseShellExecute = false });
            var output = process?.StandardOutput.ReadToEnd() ?? "";
            process?.WaitForExit();
            return output.Trim();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return $"{file}: not installed";
        }
    }

    [GeneratedRegex(@"MemTotal:\s+(\d+) kB")]
    private static partial Regex MemTotal();
}
