using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using Gateway.Connections;
using Gateway.Workers;

namespace Gateway.Telemetry;

/// <summary>
/// The <c>gateway.request.duration</c> histogram (by listener, operation and outcome; in the prefork
/// supervisor also by worker), kept here rather than in OpenTelemetry's SDK because it is recorded on every
/// request: the SDK finds a measurement's series by hashing its four tags on each call (≈ 100 ns, a tenth of
/// a pipelined ping's whole cost), while a series here is found by reference from the last one this thread
/// used and recorded with two interlocked operations. The counts are exact: /metrics shows them as
/// the same Prometheus histogram (<see cref="WritePrometheus"/>, added to the SDK's scrape), workers send
/// them as heartbeat deltas (<see cref="TakeDeltas"/>, <see cref="AddFromWorker"/>) and the dashboard's
/// latency sees every value (<see cref="RpcObserver"/>).
/// </summary>
/// <remarks>
/// With OTLP export on, <see cref="ServedAtMetrics"/> is false: <see cref="GatewayMetrics"/> then also records
/// every request into an SDK histogram of the same name, which both exporters carry, and /metrics shows that
/// one — the SDK's per-call cost is paid only by a deployment that asks for OTLP.
/// </remarks>
public sealed class RequestDurations(bool servedAtMetrics = true)
{
    public const string Name = "gateway.request.duration";

    public const string Description = "Time to handle one message (RPC request, FTP command), reply written; by operation and outcome";

    private static readonly double[] BucketBounds =
        [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    /// <summary>Upper bounds of the buckets, in seconds, inclusive (as OpenTelemetry's); a last bucket holds the rest.</summary>
    public static IReadOnlyList<double> Bounds => BucketBounds;

    private const string PrometheusName = "gateway_request_duration_seconds";
    private const string RpcProtocol = "rpc";

    /// <summary>The series this thread recorded last, so a run of the same request type skips the dictionary.</summary>
    [ThreadStatic]
    private static LastSeries? t_last;

    private readonly ConcurrentDictionary<SeriesKey, Series> _series = new();
    private readonly Lock _reporting = new();

    /// <summary>False when OTLP export is on and the SDK's own histogram of this name is the one /metrics shows.</summary>
    public bool ServedAtMetrics { get; } = servedAtMetrics;

    /// <summary>
    /// Called with every RPC duration recorded (seconds, and how many requests took it: workers' arrive as a
    /// bucket's mean and count), from any thread; the dashboard's latency percentiles.
    /// </summary>
    public Action<double, long>? RpcObserver { get; set; }

    /// <summary>One message handled on <paramref name="listener"/>, on the request path.</summary>
    public void Record(ListenerStats listener, string operation, string outcome, double seconds)
    {
        var last = t_last ??= new LastSeries();
        if (!ReferenceEquals(last.Owner, this) || !ReferenceEquals(last.Listener, listener)
            || !string.Equals(last.Operation, operation, StringComparison.Ordinal) || !string.Equals(last.Outcome, outcome, StringComparison.Ordinal))
        {
            var key = new SeriesKey(listener.Protocol, listener.Model, operation, outcome, null);
            last.Series = _series.GetOrAdd(key, static _ => new Series());
            last.Owner = this;
            last.Listener = listener;
            last.Operation = operation;
            last.Outcome = outcome;
            last.Rpc = listener.Protocol == RpcProtocol;
        }

        last.Series.Add(Bucket(seconds), 1, seconds);
        if (last.Rpc)
        {
            RpcObserver?.Invoke(seconds, 1);
        }
    }

    /// <summary>What a worker measured since its last heartbeat, added to its own series (tagged with <paramref name="worker"/>).</summary>
    public void AddFromWorker(string worker, IReadOnlyDictionary<string, string> tags, IEnumerable<HistogramBucket> buckets)
    {
        ArgumentNullException.ThrowIfNull(tags);
        ArgumentNullException.ThrowIfNull(buckets);
        var key = new SeriesKey(Tag(tags, "protocol"), Tag(tags, "model"), Tag(tags, "operation"), Tag(tags, "outcome"), worker);
        var series = _series.GetOrAdd(key, static _ => new Series());
        var rpc = key.Protocol == RpcProtocol;
        foreach (var bucket in buckets)
        {
            if (bucket.Index < 0 || bucket.Index > BucketBounds.Length || bucket.Count < 0)
            {
                continue;
            }

            series.Add(bucket.Index, bucket.Count, bucket.Sum);
            if (rpc && bucket.Count > 0)
            {
                RpcObserver?.Invoke(bucket.Sum / bucket.Count, bucket.Count);
            }
        }
    }

    /// <summary>
    /// A worker's heartbeat part: each series' counts and sums per bucket since the last call (one caller at a
    /// time); an unchanged series is left out.
    /// </summary>
    public MetricDelta[] TakeDeltas()
    {
        var deltas = new List<MetricDelta>();
        lock (_reporting)
        {
            foreach (var (key, series) in _series)
            {
                if (series.TakeSinceReport() is { } buckets)
                {
                    var tags = new Dictionary<string, string>
                    {
                        ["protocol"] = key.Protocol,
                        ["model"] = key.Model,
                        ["operation"] = key.Operation,
                        ["outcome"] = key.Outcome,
                    };
                    deltas.Add(new MetricDelta(Name, tags) { Buckets = buckets });
                }
            }
        }

        return [.. deltas];
    }

    /// <summary>
    /// The histogram in the Prometheus text format (<paramref name="openMetrics"/>: OpenMetrics 1.0), labelled
    /// as OpenTelemetry's exporter labels its own metrics, so a scrape reads as one; nothing before the first request.
    /// </summary>
    public void WritePrometheus(StringBuilder text, bool openMetrics)
    {
        ArgumentNullException.ThrowIfNull(text);
        var all = _series.ToArray();
        if (all.Length == 0)
        {
            return;
        }

        Array.Sort(all, static (a, b) => a.Key.CompareTo(b.Key));
        text.Append("# TYPE ").Append(PrometheusName).Append(" histogram\n");
        if (openMetrics)
        {
            text.Append("# UNIT ").Append(PrometheusName).Append(" seconds\n");
        }

        text.Append("# HELP ").Append(PrometheusName).Append(' ').Append(Description).Append('\n');
        var labels = new StringBuilder();
        foreach (var (key, series) in all)
        {
            labels.Clear().Append("otel_scope_name=\"").Append(GatewayMetrics.MeterName).Append('"');
            Label(labels, "model", key.Model);
            Label(labels, "operation", key.Operation);
            Label(labels, "outcome", key.Outcome);
            Label(labels, "protocol", key.Protocol);
            if (key.Worker is not null)
            {
                Label(labels, "worker", key.Worker);
            }

            long count = 0;
            double sum = 0;
            for (var i = 0; i <= BucketBounds.Length; i++)
            {
                count += Volatile.Read(ref series.Counts[i]);
                sum += Volatile.Read(ref series.Sums[i]);
                var bound = i < BucketBounds.Length ? Number(BucketBounds[i], openMetrics) : "+Inf";
                text.Append(PrometheusName).Append("_bucket{").Append(labels).Append(",le=\"").Append(bound).Append("\"} ")
                    .Append(count.ToString(CultureInfo.InvariantCulture)).Append('\n');
            }

            text.Append(PrometheusName).Append("_sum{").Append(labels).Append("} ").Append(Number(sum, openMetrics)).Append('\n');
            text.Append(PrometheusName).Append("_count{").Append(labels).Append("} ").Append(count.ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
    }

    /// <summary>The first bucket whose upper bound is at least the value.</summary>
    private static int Bucket(double seconds)
    {
        var index = Array.BinarySearch(BucketBounds, seconds);
        return index >= 0 ? index : ~index;
    }

    private static string Tag(IReadOnlyDictionary<string, string> tags, string key) => tags.GetValueOrDefault(key) ?? "";

    private static string Number(double value, bool openMetrics)
    {
        var text = value.ToString("R", CultureInfo.InvariantCulture);
        return openMetrics ? text.ToLowerInvariant() : text;
    }

    private static void Label(StringBuilder labels, string name, string value)
    {
        labels.Append(',').Append(name).Append("=\"");
        foreach (var c in value)
        {
            _ = c switch
            {
                '\\' => labels.Append("\\\\"),
                '"' => labels.Append("\\\""),
                '\n' => labels.Append("\\n"),
                _ => labels.Append(c),
            };
        }

        labels.Append('"');
    }

    private readonly record struct SeriesKey(string Protocol, string Model, string Operation, string Outcome, string? Worker)
        : IComparable<SeriesKey>
    {
        public int CompareTo(SeriesKey other)
        {
            var order = string.CompareOrdinal(Protocol, other.Protocol);
            order = order != 0 ? order : string.CompareOrdinal(Model, other.Model);
            order = order != 0 ? order : string.CompareOrdinal(Worker, other.Worker);
            order = order != 0 ? order : string.CompareOrdinal(Operation, other.Operation);
            return order != 0 ? order : string.CompareOrdinal(Outcome, other.Outcome);
        }
    }

    private sealed class LastSeries
    {
        public RequestDurations? Owner;
        public ListenerStats? Listener;
        public string? Operation;
        public string? Outcome;
        public Series Series = null!;
        public bool Rpc;
    }

    /// <summary>A count and a sum per bucket, added to from any thread.</summary>
    private sealed class Series
    {
        public readonly long[] Counts = new long[BucketBounds.Length + 1];
        public readonly double[] Sums = new double[BucketBounds.Length + 1];

        // What the last heartbeat reported (the reporting lock's holder only).
        private long[]? _reportedCounts;
        private double[]? _reportedSums;

        public void Add(int bucket, long count, double sum)
        {
            Interlocked.Add(ref Counts[bucket], count);
            ref var total = ref Sums[bucket];
            var seen = Volatile.Read(ref total);
            while (true)
            {
                var found = Interlocked.CompareExchange(ref total, seen + sum, seen);
                if (BitConverter.DoubleToInt64Bits(found) == BitConverter.DoubleToInt64Bits(seen))
                {
                    return;
                }

                seen = found;
            }
        }

        public HistogramBucket[]? TakeSinceReport()
        {
            _reportedCounts ??= new long[Counts.Length];
            _reportedSums ??= new double[Sums.Length];
            List<HistogramBucket>? changed = null;
            for (var i = 0; i < Counts.Length; i++)
            {
                // A value being recorded now may be in the count and not yet in the sum: the next report carries the rest.
                var count = Volatile.Read(ref Counts[i]);
                var sum = Volatile.Read(ref Sums[i]);
                if (count != _reportedCounts[i] || !sum.Equals(_reportedSums[i]))
                {
                    (changed ??= []).Add(new HistogramBucket(i, count - _reportedCounts[i], sum - _reportedSums[i]));
                    _reportedCounts[i] = count;
                    _reportedSums[i] = sum;
                }
            }

            return changed?.ToArray();
        }
    }
}
