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

/// <summary>A page of a listing: <see cref="Total"/> counts every match, <see cref="Items"/> holds one page of them.</summary>
public sealed record ConnectionPage(int Total, int Offset, int Limit, IReadOnlyList<ConnectionSnapshot> Items);
