using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Workers;

namespace Gateway.Admin;

/// <summary>
/// Each listener's counters as the admin API shows them: its own counts plus its live connections' bytes, and
/// for a listener on the prefork pool the workers' counts from their last heartbeats (its connections live
/// there). Rejections in the workers reach only /metrics.
/// </summary>
internal static class ListenerTotals
{
    public static ListenerInfo[] Read(GatewayListeners listeners, ConnectionRegistry registry, WorkerPool? pool)
    {
        var fromWorkers = pool is { IsActive: true }
            ? pool.ListenerCounts().Select(w => w.Counts).ToLookup(c => c.Key)
            : null;
        return listeners.Stats.Select(l =>
        {
            var (liveIn, liveOut) = registry.LiveBytes(l);
            var workers = fromWorkers?[l.Endpoint.Key] ?? [];
            return new ListenerInfo(l.Protocol, (l.Endpoint with { Port = l.Port }).Display, l.Port, l.Model,
                l.Active + workers.Sum(c => c.Active),
                l.Accepted + workers.Sum(c => c.Accepted),
                l.Rejected,
                l.ClosedBytesIn + liveIn + workers.Sum(c => c.BytesIn),
                l.ClosedBytesOut + liveOut + workers.Sum(c => c.BytesOut),
                l.Endpoint.Tls);
        }).ToArray();
    }
}
