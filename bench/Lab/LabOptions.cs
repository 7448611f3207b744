using System.Globalization;

namespace Gateway.Lab;

/// <summary>What to run: the quick matrix (under 15 minutes here) or the full one, which scenarios, where to write.</summary>
internal sealed record LabOptions(string Root, bool Quick, int Seconds, int Warmup, IReadOnlySet<string> Scenarios, IReadOnlySet<string>? Models, string Output, bool Pin = true)
{
    /// <summary>Only redraw latest.md and the charts from this results file (after a change to the report).</summary>
    public string? RedrawFrom { get; init; }

    /// <summary>Measure the chosen scenarios and models again and put their rows in place of theirs in this results file.</summary>
    public string? MergeInto { get; init; }

    /// <summary>Record a CPU profile of the server over every run (perf), written to profiles/ beside the results.</summary>
    public bool Profile { get; init; }

    public const string Usage = """
        usage: bench/run [--quick] [--seconds N] [--scenarios ping,pipelined,echo,idle,work,churn,ftp,calibration]
                         [--models kestrel,epoll,...] [--out bench/results] [--no-pin] [--profile]
               bench/run --redraw bench/results/latest.json   (only the report and charts again)
               bench/run --scenarios idle --models select --merge bench/results/latest.json   (re-measure some cells)
        """;

    public static readonly string[] AllScenarios = ["calibration", "ping", "pipelined", "echo", "idle", "work", "churn", "ftp"];

    /// <summary>Whether servers and the load generator run pinned apart (not asked otherwise, and the machine has a second core).</summary>
    public bool Pinned => Pin && Environment.ProcessorCount >= 2;

    /// <summary>The server's CPU in pinned scenarios (taskset list), or null.</summary>
    public string? ServerCpus => Pinned ? "0" : null;

    /// <summary>The load generator's CPU in pinned scenarios.</summary>
    public string? LoadCpus => Pinned ? "1" : null;

    public bool Runs(string scenario) => Scenarios.Contains(scenario);

    public bool Includes(ModelConfig model) => Models is null || Models.Contains(model.Name);

    public static LabOptions? Parse(string[] args)
    {
        var quick = false;
        int? seconds = null;
        var scenarios = new HashSet<string>(AllScenarios);
        HashSet<string>? models = null;
        var output = "bench/results";
        var pin = true;
        string? redraw = null;
        string? merge = null;
        var profile = false;
        for (var i = 0; i < args.Length; i++)
        {
            string Next() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value");
            switch (args[i])
            {
                case "--quick":
                    quick = true;
                    break;
                case "--seconds":
                    seconds = int.Parse(Next(), CultureInfo.InvariantCulture);
                    break;
                case "--scenarios":
                    scenarios = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries)];
                    if (scenarios.Except(AllScenarios).FirstOrDefault() is { } unknown)
                    {
                        throw new ArgumentException($"no scenario '{unknown}'");
                    }

                    break;
                case "--models":
                    models = [.. Next().Split(',', StringSplitOptions.RemoveEmptyEntries)];
                    break;
                case "--redraw":
                    redraw = Next();
                    break;
                case "--merge":
                    merge = Next();
                    break;
                case "--profile":
                    profile = true;
                    break;
                case "--no-pin":
                    pin = false;
                    break;
                case "--out":
                    output = Next();
                    break;
                default:
                    return null;
            }
        }

        return new LabOptions(Directory.GetCurrentDirectory(), quick, seconds ?? (quick ? 3 : 10), quick ? 1 : 2, scenarios, models, output, pin) { RedrawFrom = redraw, MergeInto = merge, Profile = profile };
    }
}
