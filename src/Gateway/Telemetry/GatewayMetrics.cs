using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Protocols.Ftp;
using Gateway.Workers;

namespace Gateway.Telemetry;

/// <summary>
/// The <c>Gateway</c> meter. Counts kept anyway for the admin API (active, accepted, bytes) are observed at
/// collection time, so the data path pays nothing for them; per-message counts are recorded as they happen.
/// Every instrument is tagged with the listener's <c>protocol</c> and <c>model</c>. In the prefork supervisor
/// every instrument includes the workers' measurements too, tagged with <c>worker</c>: the connection and byte
/// counts as their heartbeats report them, the per-message ones as the deltas each heartbeat carries
/// (<see cref="AddFromWorker"/>). The pool's own state is in <c>gateway.workers</c>,
/// <c>gateway.worker.restarts</c>, <c>gateway.worker.memory</c> and <c>gateway.worker.cpu.time</c>.
/// The request duration histogram is <see cref="RequestDurations"/>'s (it is recorded on every request).
/// </summary>
public sealed class GatewayMetrics
{
    public const string MeterName = "Gateway";

    private static readonly KeyValuePair<string, object?> FtpTag = new("protocol", "ftp");

    private readonly Counter<long> _rejected;
    private readonly Counter<long> _closedByAdmin;
    private readonly RequestDurations _durations;

    /// <summary>The SDK's copy of the request histogram, for OTLP export only (see <see cref="RequestDurations"/>).</summary>
    private readonly Histogram<double>? _sdkDurations;
    private readonly Counter<long> _protocolErrors;
    private readonly Counter<long> _abandoned;
    private readonly Counter<long> _transfers;
    private readonly Counter<long> _transferBytes;
    private readonly Counter<long> _tlsHandshakes;
    private readonly Counter<long> _logins;

    /// <summary>The counters a worker's deltas are added to, by name.</summary>
    private readonly Dictionary<string, Counter<long>> _forWorkers;
    private readonly Counter<long> _limitsReached;

    public GatewayMetrics(IMeterFactory meterFactory, GatewayListeners listeners, ConnectionRegistry registry, RequestDurations durations,
        WorkerPool? pool = null, FtpPasswordVerifier? passwordVerifier = null)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(listeners);
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(durations);
        _durations = durations;
        var meter = meterFactory.Create(MeterName);
        var workers = new WorkerCounts(listeners, pool);
        // A prefork listener's connections live in the workers: the supervisor's own (always zero) series would
        // only confuse a sum, so its counts come from the workers alone.
        var own = listeners.Stats.Where(l => pool is null || l.Endpoint.Model != ServerModels.Prefork).ToArray();
        meter.CreateObservableUpDownCounter("gateway.connections.active",
            () => own.Select(l => new Measurement<long>(l.Active, l.Tags)).Concat(workers.Measure(c => c.Active)),
            "{connection}", "Protocol connections open now");
        meter.CreateObservableCounter("gateway.connections.accepted",
            () => own.Select(l => new Measurement<long>(l.Accepted, l.Tags)).Concat(workers.Measure(c => c.Accepted)),
            "{connection}", "Protocol connections admitted");
        _rejected = meter.CreateCounter<long>("gateway.connections.rejected", "{connection}",
            "Connections closed at accept time, by reason (max_connections, max_connections_per_ip, model_limit, max_threads, no_thread, no_process)");
        _closedByAdmin = meter.CreateCounter<long>("gateway.connections.closed_by_admin", "{connection}",
            "Connections closed through DELETE /admin/connections/{id}");
        meter.CreateObservableCounter("gateway.io",
            () => Bytes(own, registry).Concat(workers.Measure(c => c.BytesIn, "receive")).Concat(workers.Measure(c => c.BytesOut, "transmit")),
            "By", "Bytes received and sent on protocol connections, by direction");
        if (pool is not null)
        {
            meter.CreateObservableUpDownCounter("gateway.workers",
                () => pool.States().GroupBy(state => state).Select(g => new Measurement<long>(g.Count(), new KeyValuePair<string, object?>("state", g.Key))),
                "{process}", "Worker processes of the prefork pool, by state");
            meter.CreateObservableCounter("gateway.worker.restarts",
                () => pool.Restarts().Select(r => new Measurement<long>(r.Restarts, new KeyValuePair<string, object?>("worker", r.Worker))),
                "{restart}", "Times a worker place was refilled after its process exited or hung");
            meter.CreateObservableUpDownCounter("gateway.worker.memory",
                () => pool.Workers().Select(w => new Measurement<long>(w.RssBytes, new KeyValuePair<string, object?>("worker", w.Index))),
                "By", "Resident memory of each worker process");
            meter.CreateObservableCounter("gateway.worker.cpu.time",
                () => pool.Workers().Select(w => new Measurement<double>(w.CpuSeconds, new KeyValuePair<string, object?>("worker", w.Index))),
                "s", "CPU time of each worker process");
        }
        // The request histogram's _count series is the request count by operation and outcome (as with Kestrel's
        // and ASP.NET Core's request duration), so no separate counter is paid for on every request.
        if (!durations.ServedAtMetrics)
        {
            _sdkDurations = meter.CreateHistogram<double>(RequestDurations.Name, "s", RequestDurations.Description,
                tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = RequestDurations.Bounds });
        }

        _protocolErrors = meter.CreateCounter<long>("gateway.protocol.errors", "{error}",
            "Requests answered with an error (bad_json, bad_request, unknown_method, bad_params, too_large, ...), by code");
        _abandoned = meter.CreateCounter<long>("gateway.requests.abandoned", "{request}",
            "Requests stopped unanswered because their connection ended while they ran or waited for the CPU (RPC work, sleep), by operation");
        _transfers = meter.CreateCounter<long>("gateway.transfers", "{transfer}",
            "FTP data transfers ended, by direction (receive: upload, transmit: download or listing) and outcome");
        _transferBytes = meter.CreateCounter<long>("gateway.transfer.io", "By", "Bytes moved on FTP data connections, by direction");
        _tlsHandshakes = meter.CreateCounter<long>("gateway.tls.handshakes", "{handshake}",
            "TLS handshakes ended, by channel (connection: a TLS listener's; control, data: FTPS) and outcome (ok, failed); " +
            "Kestrel's kestrel.tls_handshake.duration has the same for TLS listeners of this process, with timings");
        _limitsReached = meter.CreateCounter<long>("gateway.limits.reached", "{refusal}",
            "Times a cap on what clients may hold refused one of them something, by limit (ftp_passive_ports, ftp_passive_ports_per_address, ...)");
        _logins = meter.CreateCounter<long>("gateway.logins", "{login}",
            "FTP logins (PASS) by outcome (ok, failed, locked_out, queue_full, queue_timeout) and by what checked the password " +
            "(hash: PBKDF2, cache: a login remembered, none)");
        if (passwordVerifier is not null)
        {
            meter.CreateObservableUpDownCounter("gateway.logins.pending", () => new Measurement<long>(passwordVerifier.Pending, FtpTag),
                "{login}", "FTP password verifications running or waiting for a hashing thread in this process");
        }

        _forWorkers = new Dictionary<string, Counter<long>>
        {
            [_limitsReached.Name] = _limitsReached,
            [_rejected.Name] = _rejected,
            [_closedByAdmin.Name] = _closedByAdmin,
            [_protocolErrors.Name] = _protocolErrors,
            [_abandoned.Name] = _abandoned,
            [_transfers.Name] = _transfers,
            [_transferBytes.Name] = _transferBytes,
            [_tlsHandshakes.Name] = _tlsHandshakes,
            [_logins.Name] = _logins,
        };
        if (pool is not null)
        {
            pool.MetricsReceived += AddFromWorker;
            pool.ConnectionNotServed += key =>
            {
                if (listeners.Stats.FirstOrDefault(l => l.Endpoint.Key == key) is { } listener)
                {
                    listener.RejectedOne();
                    Rejected(listener, WorkerPool.NoProcess);
                }
            };
        }
    }

    /// <summary>
    /// Adds what a worker measured since its last heartbeat to these instruments, tagged with the worker; its
    /// request durations go to <see cref="RequestDurations"/>.
    /// </summary>
    public void AddFromWorker(string worker, IReadOnlyList<MetricDelta> deltas)
    {
        ArgumentNullException.ThrowIfNull(deltas);
        foreach (var delta in deltas)
        {
            var tags = new TagList { { "worker", worker } };
            foreach (var (key, value) in delta.Tags)
            {
                if (key != "worker")
                {
                    tags.Add(key, value);
                }
            }

            if (delta.Instrument == RequestDurations.Name && delta.Buckets is { } buckets)
            {
                _durations.AddFromWorker(worker, delta.Tags, buckets);
                if (_sdkDurations is not null)
                {
                    RecordAsMeans(_sdkDurations, buckets, tags);
                }
            }
            else if (_forWorkers.GetValueOrDefault(delta.Instrument) is { } counter && delta.Add is > 0 and var added)
            {
                counter.Add(added, tags);
            }
        }
    }

    /// <summary>
    /// A histogram bucket's values recorded as their mean, as many times as there were values: the mean lies in
    /// the bucket, so bucket counts, count and sum come out as the worker measured them.
    /// </summary>
    private static void RecordAsMeans(Histogram<double> histogram, HistogramBucket[] buckets, in TagList tags)
    {
        var bounds = RequestDurations.Bounds;
        foreach (var bucket in buckets)
        {
            if (bucket.Count <= 0 || bucket.Index < 0 || bucket.Index > bounds.Count)
            {
                continue;
            }

            var mean = bucket.Sum / bucket.Count;
            // Kept inside (lower, upper] against rounding: n equal values on a boundary may average just past it.
            if (bucket.Index < bounds.Count)
            {
                mean = Math.Min(mean, bounds[bucket.Index]);
            }

            if (bucket.Index > 0)
            {
                mean = Math.Max(mean, Math.BitIncrement(bounds[bucket.Index - 1]));
            }

            for (var i = 0; i < bucket.Count; i++)
            {
                histogram.Record(mean, tags);
            }
        }
    }

    public void Rejected(ListenerStats listener, string reason)
    {
        var tags = new TagList(listener.Tags) { { "reason", reason } };
        _rejected.Add(1, tags);
    }

    public void ClosedByAdmin(ListenerStats listener) => _closedByAdmin.Add(1, listener.Tags);

    public void MessageHandled(ListenerStats listener, string operation, string outcome, double seconds)
    {
        _durations.Record(listener, operation, outcome, seconds);
        if (_sdkDurations is { Enabled: true })
        {
            _sdkDurations.Record(seconds, new TagList(listener.Tags) { { "operation", operation }, { "outcome", outcome } });
        }

        if (outcome != Protocols.ProtocolOutcomes.Ok && _protocolErrors.Enabled)
        {
            var tags = new TagList(listener.Tags) { { "code", outcome } };
            _protocolErrors.Add(1, tags);
        }
    }

    public void Abandoned(ListenerStats listener, string operation) =>
        _abandoned.Add(1, new TagList(listener.Tags) { { "operation", operation } });

    public void TransferEnded(ListenerStats listener, string direction, long bytes, string outcome)
    {
        _transfers.Add(1, new TagList(listener.Tags) { { "direction", direction }, { "outcome", outcome } });
        _transferBytes.Add(bytes, new TagList(listener.Tags) { { "direction", direction } });
    }

    public void LimitReached(ListenerStats listener, string limit) =>
        _limitsReached.Add(1, new TagList(listener.Tags) { { "limit", limit } });

    public void TlsHandshakeEnded(ListenerStats listener, string channel, bool succeeded) =>
        _tlsHandshakes.Add(1, new TagList(listener.Tags) { { "channel", channel }, { "outcome", succeeded ? "ok" : "failed" } });

    public void LoginEnded(ListenerStats listener, string outcome, string check) =>
        _logins.Add(1, new TagList(listener.Tags) { { "outcome", outcome }, { "check", check } });

    /// <summary>The workers' counters as measurements: their listener's tags plus <c>worker</c> (and <c>direction</c>).</summary>
    private sealed class WorkerCounts(GatewayListeners listeners, WorkerPool? pool)
    {
        public IEnumerable<Measurement<long>> Measure(Func<ListenerCounts, long> value, string? direction = null)
        {
            if (pool is not { IsActive: true })
            {
                yield break;
            }

            foreach (var (worker, counts) in pool.ListenerCounts())
            {
                if (listeners.Stats.FirstOrDefault(l => l.Endpoint.Key == counts.Key) is not { } listener)
                {
                    continue;
                }

                var tags = new TagList(listener.Tags) { { "worker", worker } };
                if (direction is not null)
                {
                    tags.Add("direction", direction);
                }

                yield return new Measurement<long>(value(counts), tags);
            }
        }
    }

    private static IEnumerable<Measurement<long>> Bytes(IEnumerable<ListenerStats> listeners, ConnectionRegistry registry)
    {
        foreach (var listener in listeners)
        {
            var (liveIn, liveOut) = registry.LiveBytes(listener);
            yield return new Measurement<long>(listener.ClosedBytesIn + liveIn, new TagList(listener.Tags) { { "direction", "receive" } });
            yield return new Measurement<long>(listener.ClosedBytesOut + liveOut, new TagList(listener.Tags) { { "direction", "transmit" } });
        }
    }
}
