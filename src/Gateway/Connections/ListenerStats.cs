using Gateway.Listeners;
using Gateway.Protocols;

namespace Gateway.Connections;

/// <summary>
/// One protocol listener's counters. Accept-time counts live here; byte counts live on each connection's
/// record (no shared counter on the data path) and are added here only when a connection closes.
/// </summary>
public sealed class ListenerStats(ListenerEndpoint endpoint, int? worker = null)
{
    private int _active;
    private long _accepted;
    private long _rejected;
    private long _closedBytesIn;
    private long _closedBytesOut;

    public ListenerEndpoint Endpoint { get; } = endpoint;

    public string Protocol { get; } = endpoint.Name;

    public string Model { get; } = endpoint.Model;

    /// <summary>The port as bound (the system's choice for port 0); set once the server has started.</summary>
    public int Port { get; set; } = endpoint.Port;

    public IServerModelFeature ModelFeature { get; } = new ServerModelFeature(endpoint.Model, worker);

    /// <summary>The tags every metric of this listener carries.</summary>
    public KeyValuePair<string, object?>[] Tags { get; } = [new("protocol", endpoint.Name), new("model", endpoint.Model)];

    public int Active => Volatile.Read(ref _active);

    public long Accepted => Interlocked.Read(ref _accepted);

    public long Rejected => Interlocked.Read(ref _rejected);

    public long ClosedBytesIn => Interlocked.Read(ref _closedBytesIn);

    public long ClosedBytesOut => Interlocked.Read(ref _closedBytesOut);

    internal void Opened()
    {
        Interlocked.Increment(ref _accepted);
        Interlocked.Increment(ref _active);
    }

    internal void Closed(long bytesIn, long bytesOut)
    {
        Interlocked.Add(ref _closedBytesIn, bytesIn);
        Interlocked.Add(ref _closedBytesOut, bytesOut);
        Interlocked.Decrement(ref _active);
    }

    internal void RejectedOne() => Interlocked.Increment(ref _rejected);
}
