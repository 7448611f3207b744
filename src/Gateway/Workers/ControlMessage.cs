using System.Text.Json;
using System.Text.Json.Serialization;
using Gateway.Connections;

namespace Gateway.Workers;

/// <summary>
/// One message on the control channel between the supervisor and a worker, as one JSON frame of the
/// project's own framing (uint32 little-endian length, then the body). <see cref="Type"/> says which; the
/// other fields belong to some types only.
/// </summary>
/// <remarks>
/// Worker → supervisor: <c>hello</c> (index, pid, token), <c>ready</c>, <c>heartbeat</c> (connections, counters, metric deltas).
/// Supervisor → worker: <c>sockets</c> (listeners; the descriptors travel with this frame as SCM_RIGHTS),
/// <c>drain</c>. Requests the worker answers with the same <see cref="RequestId"/>: <c>list</c> (query) →
/// <c>page</c> (in parts when it is bigger than one frame, see <see cref="More"/>); <c>get</c> (id) →
/// <c>connection</c> (null when it has no such connection); <c>close</c> (id, reason) → <c>closing</c> (found, grace).
/// </remarks>
internal sealed record ControlMessage(string Type)
{
    public const string Hello = "hello", Sockets = "sockets", Ready = "ready", Heartbeat = "heartbeat", Drain = "drain";
    public const string List = "list", Page = "page", Get = "get", Connection = "connection", Close = "close", Closing = "closing";

    /// <summary>Pairs a request with its answer.</summary>
    public long? RequestId { get; init; }

    public ConnectionQuery? Query { get; init; }

    [JsonPropertyName("page")]
    public ConnectionPage? Listing { get; init; }

    /// <summary><c>page</c>: more parts of this page follow, each with more of its items (the last part has none of this).</summary>
    public bool? More { get; init; }

    public string? Id { get; init; }

    public string? Reason { get; init; }

    /// <summary><c>connection</c>: the connection asked for; null when the worker has none by that id.</summary>
    public ConnectionSnapshot? Snapshot { get; init; }

    /// <summary><c>closing</c>: whether the worker had the connection.</summary>
    public bool? Found { get; init; }

    public int? Index { get; init; }

    public int? Pid { get; init; }

    /// <summary>The secret the supervisor gave this worker (in its environment), so no other process can pose as it.</summary>
    public string? Token { get; init; }

    /// <summary><c>sockets</c>: which listener each passed descriptor serves, in the order they were passed.</summary>
    public PassedListener[]? Listeners { get; init; }

    /// <summary><c>sockets</c>: how many workers share the work (for the worker's slice of FTP passive ports).</summary>
    public int? Workers { get; init; }

    /// <summary><c>heartbeat</c>: the worker's open connections.</summary>
    public int? Connections { get; init; }

    /// <summary><c>heartbeat</c>: each listener's counters in this worker since it started.</summary>
    public ListenerCounts[]? Counts { get; init; }

    /// <summary><c>heartbeat</c>: what the worker's counters and histograms measured since its last heartbeat.</summary>
    public MetricDelta[]? Metrics { get; init; }
}

/// <summary>A listener's counters in one worker, as the admin API's listener list and the metrics show them.</summary>
public sealed record ListenerCounts(string Key, int Active, long Accepted, long BytesIn, long BytesOut);

/// <summary>
/// One series of a worker's <c>Gateway</c> meter since its last heartbeat: a counter's increase
/// (<see cref="Add"/>) or a histogram's new measurements, per bucket (<see cref="Buckets"/>).
/// </summary>
public sealed record MetricDelta(string Instrument, Dictionary<string, string> Tags)
{
    public long? Add { get; init; }

    public HistogramBucket[]? Buckets { get; init; }
}

/// <summary>How many values fell in the bucket at <see cref="Index"/> of a histogram's boundaries, and their sum.</summary>
public sealed record HistogramBucket(int Index, long Count, double Sum);

/// <summary>A listener's descriptors in a <c>sockets</c> message: <see cref="Count"/> of them, for <see cref="Key"/>.</summary>
internal sealed record PassedListener(string Key, int Count, int Port)
{
    /// <summary>The descriptor is an accepted connection (per-connection mode), not a listen socket.</summary>
    public bool Connected { get; init; }
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ControlMessage))]
internal sealed partial class ControlJsonContext : JsonSerializerContext;
