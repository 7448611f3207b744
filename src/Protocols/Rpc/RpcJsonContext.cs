using System.Text.Json;
using System.Text.Json.Serialization;

namespace Gateway.Protocols.Rpc;

public sealed record WhoAmIResult(int Pid, string Model, int? Worker, string Connection);

public sealed record TimeResult(DateTime Utc, long UnixMs);

public sealed record WorkResult(long Rounds, string Digest);

internal sealed record WorkParams([property: JsonRequired] long Rounds);

internal sealed record SleepParams([property: JsonRequired] long Ms);

/// <summary>Source-generated (reflection-free) JSON for the typed params and results of the methods.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(WhoAmIResult))]
[JsonSerializable(typeof(TimeResult))]
[JsonSerializable(typeof(WorkResult))]
[JsonSerializable(typeof(WorkParams))]
[JsonSerializable(typeof(SleepParams))]
internal sealed partial class RpcJsonContext : JsonSerializerContext;
