using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Lab;

/// <summary>One measurement of the comparison: a model (or an anchor: redis, iperf3, vsftpd) on one scenario.</summary>
internal sealed record Row(string Model, string Scenario)
{
    public int Connections { get; init; }

    public int Pipeline { get; init; } = 1;

    public int Idle { get; init; }

    public int MessageBytes { get; init; }

    public double Rps { get; init; }

    public double Mbps { get; init; }

    public double P50Us { get; init; }

    public double P90Us { get; init; }

    public double P99Us { get; init; }

    public double P999Us { get; init; }

    /// <summary>The server's CPU seconds (user and system, its process tree) over the measured window.</summary>
    public double ServerCpuS { get; init; }

    /// <summary>The server's CPU per request over the measured window, in µs: user and system, and user alone.</summary>
    public double? CpuUsPerRequest { get; init; }

    public double? UserUsPerRequest { get; init; }

    /// <summary>The server's context switches (voluntary and involuntary, every thread) per request over the measured window.</summary>
    public double? ContextSwitchesPerRequest { get; init; }

    /// <summary>The last warm-up second's rate as a share of the measured window's (1 when settled); null when not judged.</summary>
    public double? Settling { get; init; }

    /// <summary>In an interleaved round (1, 2 …) of the goal cells; null for the matrix's single runs.</summary>
    public int? Round { get; init; }

    public double ServerRssMb { get; init; }

    /// <summary>Memory rows: the server's RSS growth per idle connection.</summary>
    public double? KibPerIdle { get; init; }

    /// <summary>LoadGen ended with a connection failed or an idle one closed: the figures are partial.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingDefault)]
    public bool Partial { get; init; }

    /// <summary>Why a cell is empty, or how it was measured when that differs from the scenario's rule.</summary>
    public string? Note { get; init; }

    /// <summary>Whether the row carries a measurement (a skipped or failed cell has only its note).</summary>
    public bool HasFigure => Rps > 0 || Mbps > 0 || KibPerIdle is not null;
}

/// <summary>
/// A fresh server's replies per second from its first request (RPC ping, 16 connections, no warm-up) and the steady
/// rate it then measured at the same load.
/// </summary>
internal sealed record WarmupCurve(string Model, int Round, IReadOnlyList<double> PerSecond, double Steady)
{
    /// <summary>The warm-up goal (P11): this share of the steady rate …</summary>
    public const double Share = 0.9;

    /// <summary>… within this many seconds of the first request.</summary>
    public const int GoalSeconds = 2;

    /// <summary>The first second (counted from 1) whose replies reach <see cref="Share"/> of the steady rate; null if none in the curve.</summary>
    public int? SecondsToSteady
    {
        get
        {
            for (var i = 0; i < PerSecond.Count; i++)
            {
                if (PerSecond[i] >= Share * Steady)
                {
                    return i + 1;
                }
            }

            return null;
        }
    }
}

/// <summary>bench/results/latest.json.</summary>
internal sealed record Results(MachineInfo Machine, Calibration? Calibration, IReadOnlyList<Row> Rows)
{
    /// <summary>The goal cells' interleaved rounds, a row per model, cell and round (the matrix holds each cell's median round).</summary>
    public IReadOnlyList<Row>? Rounds { get; init; }

    /// <summary>Each fresh server's warm-up, per model and round.</summary>
    public IReadOnlyList<WarmupCurve>? Warmups { get; init; }

    /// <summary>Cells measured again after the run (bench/run --merge): which, and when.</summary>
    public IReadOnlyList<string>? Remeasured { get; init; }

    public static async Task<Results> ReadAsync(string path) =>
        JsonSerializer.Deserialize(await File.ReadAllTextAsync(path), LabJson.Default.Results) ?? throw new InvalidDataException($"{path}: no results");
}

/// <summary>LoadGen against redis-benchmark on the same Redis: below 0.9 the generator, not the server, limits the figures.</summary>
internal sealed record Calibration(double LoadGenRps, double RedisBenchmarkRps, int Connections)
{
    public double Ratio => RedisBenchmarkRps == 0 ? 0 : LoadGenRps / RedisBenchmarkRps;
}

internal sealed record MachineInfo(string Cpu, int Cores, double MemoryGib, string Kernel, string Dotnet, string Redis,
    string Date, bool Pinned, string Mode, int Seconds, int Warmup = 0);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Results))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class LabJson : JsonSerializerContext;
