using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Connections;
using Gateway.Listeners;

namespace Gateway.Telemetry;

/// <summary>
/// The <c>Gateway</c> meter. Counts kept anyway for the admin API (active, accepted, bytes) are observed at
/// collection time, so the data path pays nothing for them; per-message counts are recorded as they happen.
/// Every instrument is tagged with the listener's <c>protocol</c> and <c>model</c>.
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "Gateway";

    private static readonly double[] DurationBuckets =
        [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    private readonly Counter<long> _rejected;
    private readonly Counter<long> _closedByAdmin;
    private readonly Histogram<double> _duration;
    private readonly Counter<long> _protocolErrors;
    private readonly Counter<long> _transfers;
    private readonly Counter<long> _transferBytes;

    public GatewayMetrics(IMeterFactory meterFactory, GatewayListeners listeners, ConnectionRegistry registry)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(listeners);
        ArgumentNullException.ThrowIfNull(registry);
        var meter = meterFactory.Create(MeterName);
        meter.CreateObservableUpDownCounter("gateway.connections.active",
            () => listeners.Stats.Select(l => new Measurement<long>(l.Active, l.Tags)),
            "{connection}", "Protocol connections open now");
        meter.CreateObservableCounter("gateway.connections.accepted",
            () => listeners.Stats.Select(l => new Measurement<long>(l.Accepted, l.Tags)),
            "{connection}", "Protocol connections admitted");
        _rejected = meter.CreateCounter<long>("gateway.connections.rejected", "{connection}",
            "Connections closed at accept time, by reason (max_connections, max_connections_per_ip)");
        _closedByAdmin = meter.CreateCounter<long>("gateway.connections.closed_by_admin", "{connection}",
            "Connections closed through DELETE /admin/connections/{id}");
        meter.CreateObservableCounter("gateway.io", () => Bytes(listeners, registry), "By",
            "Bytes received and sent on protocol connections, by direction");
        // Its _count series is the request count by operation and outcome (as with Kestrel's and ASP.NET Core's
        // request duration), so no separate counter is paid for on every request.
        _duration = meter.CreateHistogram<double>("gateway.request.duration", "s",
            "Time to handle one message (RPC request, FTP command), reply written; by operation and outcome",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = DurationBuckets });
        _protocolErrors = meter.CreateCounter<long>("gateway.protocol.errors", "{error}",
            "Requests answered with an error (bad_json, bad_request, unknown_method, bad_params, too_large, ...), by code");
        _transfers = meter.CreateCounter<long>("gateway.transfers", "{transfer}",
            "FTP data transfers ended, by direction (receive: upload, transmit: download or listing) and outcome");
        _transferBytes = meter.CreateCounter<long>("gateway.transfer.io", "By", "Bytes moved on FTP data connections, by direction");
    }

    public void Rejected(ListenerStats listener, string reason)
    {
        var tags = new TagList(listener.Tags) { { "reason", reason } };
        _rejected.Add(1, tags);
    }

    public void ClosedByAdmin(ListenerStats listener) => _closedByAdmin.Add(1, listener.Tags);

    public void MessageHandled(ListenerStats listener, string operation, string outcome, double seconds)
    {
        if (_duration.Enabled)
        {
            _duration.Record(seconds, new TagList(listener.Tags) { { "operation", operation }, { "outcome", outcome } });
        }

        if (outcome != Protocols.ProtocolOutcomes.Ok && _protocolErrors.Enabled)
        {
            var tags = new TagList(listener.Tags) { { "code", outcome } };
            _protocolErrors.Add(1, tags);
        }
    }

    public void TransferEnded(ListenerStats listener, string direction, long bytes, string outcome)
    {
        _transfers.Add(1, new TagList(listener.Tags) { { "direction", direction }, { "outcome", outcome } });
        _transferBytes.Add(bytes, new TagList(listener.Tags) { { "direction", direction } });
    }

    private static IEnumerable<Measurement<long>> Bytes(GatewayListeners listeners, ConnectionRegistry registry)
    {
        foreach (var listener in listeners.Stats)
        {
            var (liveIn, liveOut) = registry.LiveBytes(listener);
            yield return new Measurement<long>(listener.ClosedBytesIn + liveIn, new TagList(listener.Tags) { { "direction", "receive" } });
            yield return new Measurement<long>(listener.ClosedBytesOut + liveOut, new TagList(listener.Tags) { { "direction", "transmit" } });
        }
    }
}
