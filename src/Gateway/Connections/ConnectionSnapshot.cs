namespace Gateway.Connections;

/// <summary>
/// One connection as the admin API shows it — a snapshot, never the live object. A worker process reports its
/// connections in this same shape (with <see cref="Worker"/> set), so the API can merge them.
/// </summary>
/// <param name="Id">Unique while the process runs; the handle for GET and DELETE.</param>
/// <param name="Listener">The local port the connection came in on.</param>
/// <param name="Worker">The worker process index, or null when served by the gateway process itself.</param>
/// <param name="Messages">RPC requests or FTP commands handled.</param>
/// <param name="State"><c>open</c>, or <c>closing</c> once a close was requested.</param>
/// <param name="Details">Protocol facts (FTP: user, directory, transfer), when the protocol gives any.</param>
public sealed record ConnectionSnapshot(
    string Id,
    string Protocol,
    int Listener,
    string Model,
    int? Worker,
    string Remote,
    string Local,
    DateTimeOffset ConnectedAt,
    DateTimeOffset LastActivityAt,
    double AgeSeconds,
    double IdleSeconds,
    long BytesIn,
    long BytesOut,
    long Messages,
    string State,
    IReadOnlyDictionary<string, string?>? Details);

/// <summary>
/// A page of a listing: <see cref="Total"/> counts every match, <see cref="Items"/> holds one page of them.
/// <see cref="UnansweredWorkers"/> names the prefork workers that did not answer in time: their connections
/// are missing from this page (and from the total), which the caller should know rather than guess.
/// </summary>
public sealed record ConnectionPage(int Total, int Offset, int Limit, IReadOnlyList<ConnectionSnapshot> Items)
{
    public IReadOnlyList<int> UnansweredWorkers { get; init; } = [];
}

/// <summary>
/// The listing's order over snapshots, for merging pages from several processes: the same fields and
/// directions as <see cref="ConnectionRegistry.List"/>, with the arrival time standing in for the
/// per-process arrival number.
/// </summary>
public static class ConnectionSnapshotOrder
{
    public static Comparison<ConnectionSnapshot> For(string? sort)
    {
        var descending = sort?.StartsWith('-') == true;
        var field = sort?.TrimStart('-', '+').ToLowerInvariant();
        Comparison<ConnectionSnapshot> compare = field switch
        {
            "lastactivityat" => (a, b) => a.LastActivityAt.CompareTo(b.LastActivityAt),
            "idle" => (a, b) => a.IdleSeconds.CompareTo(b.IdleSeconds),
            "age" => (a, b) => a.AgeSeconds.CompareTo(b.AgeSeconds),
            "bytesin" => (a, b) => a.BytesIn.CompareTo(b.BytesIn),
            "bytesout" => (a, b) => a.BytesOut.CompareTo(b.BytesOut),
            "messages" => (a, b) => a.Messages.CompareTo(b.Messages),
            "listener" => (a, b) => a.Listener.CompareTo(b.Listener),
            "remote" => (a, b) => string.CompareOrdinal(a.Remote, b.Remote),
            "protocol" => (a, b) => string.CompareOrdinal(a.Protocol, b.Protocol),
            "model" => (a, b) => string.CompareOrdinal(a.Model, b.Model),
            "id" => (a, b) => string.CompareOrdinal(a.Id, b.Id),
            _ => (a, b) => a.ConnectedAt.CompareTo(b.ConnectedAt),
        };
        return (a, b) =>
        {
            var order = compare(a, b);
            order = order != 0 ? order : a.ConnectedAt.CompareTo(b.ConnectedAt);
            return descending ? -order : order;
        };
    }
}
