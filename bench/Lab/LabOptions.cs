using System.Globalization;

namespace Gateway.Lab;

/// <summary>What to run: the quick matrix (under 15 minutes here) or the full one, which scenarios, where to write.</summary>
internal sealed record LabOptions(string Root, bool Quick, int Seconds, int Warmup, IReadOnlySet<string> Scenarios, IReadOnlySet<string>? Models, string Output, bool Pin = true)
{
    /// <summary>Interleaved rounds of the goal cells (Redis, model A, model B … again): a ratio per round, the median reported.</summary>
    public int Rounds { get; init; } = 3;

    /// <summary>The warm-up curve's length: replies per second of a fresh server from its first request.</summary>
    public int WarmupCurveSeconds => Quick ? 6 : 10;

    /// <summary>Only redraw latest.md and the charts from this results file (after a change to the report).</summary>
    public string? RedrawFrom { get; init; }

    /// <summary>Measure the chosen scenarios and models again and put their rows in place of theirs in this results file.</summary>
    public string? MergeInto { get; init; }

    /// <summary>Record a CPU profile of the server over every run (perf), written to profiles/ beside the results.</summary>
    public bool Profile { get; init; }

    public const string Usage = """
        usage: bench/run [--quick] [--seconds N] [--rounds N] [--scenarios ping,pipelined,echo,idle,work,churn,ftp,calibration]
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

    /// <summary>The step of interleaved rounds that measures the goal cells of ping, pipelined and echo and the warm-up.</summary>
    public const string GoalRounds = "goal rounds";

    public bool Runs(string scenario) => scenario == GoalRounds ? Scenarios.Overlaps(["ping", "pipelined", "echo"]) : Scenarios.Contains(scenario);

    public bool Includes(ModelConfig model) => Models is null || Models.Contains(model.Name);

    public static LabOptions? Parse(string[] args)
    {
        var quick = false;
        int? seconds = null;
        int? rounds = null;
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
                case "--rounds":
                    rounds = int.Parse(Next(), CultureInfo.InvariantCulture);
                    if (rounds < 1)
                    {
                        throw new ArgumentException("--rounds needs at least 1");
                    }

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

        // Two warm-up seconds at least, so the last one, the settling check's, is not the run's first (connecting, the
        // generator's own JIT). A quick run makes one round unless asked for more.
        return new LabOptions(Directory.GetCurrentDirectory(), quick, seconds ?? (quick ? 3 : 10), quick ? 2 : 3, scenarios, models, output, pin)
        {
            Rounds = rounds ?? (quick ? 1 : 3),
            RedrawFrom = redraw,
            MergeInto = merge,
            Profile = profile,
        };
    }
}
