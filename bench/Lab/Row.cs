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

    public double ServerCpuS { get; init; }

    public double ServerRssMb { get; init; }

    /// <summary>Memory rows: the server's RSS growth per idle connection.</summary>
    public double? KibPerIdle { get; init; }

    /// <summary>Why a cell is empty, or how it was measured when that differs from the scenario's rule.</summary>
    public string? Note { get; init; }

    /// <summary>Whether the row carries a measurement (a skipped or failed cell has only its note).</summary>
    public bool HasFigure => Rps > 0 || Mbps > 0 || KibPerIdle is not null;
}

/// <summary>bench/results/latest.json.</summary>
internal sealed record Results(MachineInfo Machine, Calibration? Calibration, IReadOnlyList<Row> Rows)
{
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
    string Date, bool Pinned, string Mode, int Seconds);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower, WriteIndented = true,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(Results))]
[JsonSerializable(typeof(JsonElement))]
internal sealed partial class LabJson : JsonSerializerContext;
