using System.Text.Json;
using System.Text.Json.Serialization;
using Gateway.Connections;
using Microsoft.AspNetCore.Mvc;

namespace Gateway.Admin;

/// <summary>One protocol listener and its counters since start; <paramref name="Tls"/>: served over TLS.</summary>
public sealed record ListenerInfo(string Protocol, string Address, int Port, string Model,
    int Active, long Accepted, long Rejected, long BytesIn, long BytesOut, bool Tls);

/// <summary>
/// A worker process of the prefork pool: its place in the pool, its current process, its state (starting,
/// ready, draining, restarting, exited), how often its place was refilled, its open connections (from its
/// last heartbeat) and its CPU time and resident memory (from /proc).
/// </summary>
public sealed record WorkerInfo(int Index, int Pid, string Mode, string State, DateTimeOffset StartedAt,
    int Restarts, int Connections, double CpuSeconds, long RssBytes);

/// <summary>The answer to a close request: the close is under way.</summary>
public sealed record CloseAccepted(string Id, string State, string Reason, double GraceSeconds);

/// <summary>Source-generated JSON for everything the admin API returns.</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
[JsonSerializable(typeof(ConnectionPage))]
[JsonSerializable(typeof(ConnectionSnapshot))]
[JsonSerializable(typeof(ListenerInfo[]))]
[JsonSerializable(typeof(WorkerInfo[]))]
[JsonSerializable(typeof(CloseAccepted))]
[JsonSerializable(typeof(StatsSeries))]
[JsonSerializable(typeof(ProblemDetails))]
internal sealed partial class AdminJsonContext : JsonSerializerContext;
