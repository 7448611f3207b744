using System.Diagnostics.Metrics;
using System.Globalization;

namespace Gateway.Workers;

/// <summary>
/// A worker's per-message metrics (request durations, protocol errors, rejections, FTP transfers — every
/// counter and histogram of the <c>Gateway</c> meter), gathered with a <see cref="MeterListener"/> and handed
/// to the supervisor as deltas with each heartbeat. The supervisor adds them to its own instruments with a
/// <c>worker</c> tag, so one scrape of its /metrics covers the whole pool.
/// </summary>
/// <remarks>
/// A histogram travels as a count and a sum per bucket, on the instrument's own bucket boundaries: the mean
/// of the values in a bucket lies inside that bucket, so the supervisor recording the mean that many times
/// reproduces the worker's bucket counts, count and sum exactly (only min and max, which Prometheus does
/// not export, are lost). Observable instruments are not gathered here: the supervisor observes the
/// connection and byte counts from the heartbeat's <see cref="ListenerCounts"/>.
/// </remarks>
internal sealed class WorkerMeasurements : IDisposable
{
    /// <summary>OpenTelemetry's default explicit bucket boundaries, for a histogram that gives none (the supervisor uses the same).</summary>
    public static readonly double[] DefaultBoundaries = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

    private readonly MeterListener _listener = new();
    private readonly List<InstrumentSeries> _instruments = [];

    public WorkerMeasurements(string meterName)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name != meterName)
            {
                return;
            }

            InstrumentSeries? series = instrument switch
            {
                Counter<long> => new InstrumentSeries(instrument.Name, null),
                Histogram<double> histogram => new InstrumentSeries(instrument.Name,
                    histogram.Advice?.HistogramBucketBoundaries?.ToArray() ?? DefaultBoundaries),
                _ => null,
            };
            if (series is not null)
            {
                lock (_instruments)
                {
                    _instruments.Add(series);
                }

                listener.EnableMeasurementEvents(instrument, series);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((InstrumentSeries)state!).Add(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((InstrumentSeries)state!).Record(value, tags));
        _listener.Start();
    }

    /// <summary>What was measured since the last call, per instrument and tag set; an unchanged series is left out.</summary>
    public MetricDelta[] TakeDeltas()
    {
        lock (_instruments)
        {
            return [.. _instruments.SelectMany(i => i.TakeDeltas())];
        }
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>
    /// One instrument's series, by tag set. Measurements arrive on any thread; a series is found by the hash of
    /// the caller's tags and compared in place, so the request path copies nothing once its series exists.
    /// </summary>
    private sealed class InstrumentSeries(string name, double[]? boundaries)
    {
        private readonly Dictionary<int, List<(KeyValuePair<string, object?>[] Tags, Series Series)>> _series = [];

        public void Add(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            lock (_series)
            {
                Find(tags).Sum += value;
            }
        }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var bucket = Bucket(value);
            lock (_series)
            {
                var series = Find(tags);
                series.Counts![bucket]++;
                series.Sums![bucket] += value;
            }
        }

        public List<MetricDelta> TakeDeltas()
        {
            var deltas = new List<MetricDelta>();
            lock (_series)
            {
                foreach (var (tags, series) in _series.Values.SelectMany(sameHash => sameHash))
                {
                    if (series.Take(name, tags) is { } delta)
                    {
                        deltas.Add(delta);
                    }
                }
            }

            return deltas;
        }

        /// <summary>The first bucket whose upper bound is at least the value (OpenTelemetry's: upper bounds inclusive).</summary>
        private int Bucket(double value)
        {
            var index = Array.BinarySearch(boundaries!, value);
            return index >= 0 ? index : ~index;
        }

        private Series Find(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var hash = default(HashCode);
            foreach (var (key, value) in tags)
            {
                hash.Add(key);
                hash.Add(value);
            }

            var code = hash.ToHashCode();
            if (!_series.TryGetValue(code, out var sameHash))
            {
                _series.Add(code, sameHash = []);
            }

            foreach (var (known, series) in sameHash)
            {
                if (Same(known, tags))
                {
                    return series;
                }
            }

            var added = new Series(boundaries is null ? 0 : boundaries.Length + 1);
            sameHash.Add((tags.ToArray(), added));
            return added;
        }

        private static bool Same(KeyValuePair<string, object?>[] known, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (known.Length != tags.Length)
            {
                return false;
            }

            for (var i = 0; i < known.Length; i++)
            {
                if (known[i].Key != tags[i].Key || !Equals(known[i].Value, tags[i].Value))
                {
                    return false;
                }
            }

            return true;
        }
    }

    private sealed class Series(int buckets)
    {
        public long Sum;
        public readonly long[]? Counts = buckets == 0 ? null : new long[buckets];
        public readonly double[]? Sums = buckets == 0 ? null : new double[buckets];

        public MetricDelta? Take(string instrument, KeyValuePair<string, object?>[] tags)
        {
            if (Counts is null)
            {
                if (Sum == 0)
                {
                    return null;
                }

                var added = Sum;
                Sum = 0;
                return new MetricDelta(instrument, Strings(tags)) { Add = added };
            }

            List<HistogramBucket>? filled = null;
            for (var i = 0; i < Counts.Length; i++)
            {
                if (Counts[i] != 0)
                {
                    (filled ??= []).Add(new HistogramBucket(i, Counts[i], Sums![i]));
                    Counts[i] = 0;
                    Sums[i] = 0;
                }
            }

            return filled is null ? null : new MetricDelta(instrument, Strings(tags)) { Buckets = [.. filled] };
        }

        private static Dictionary<string, string> Strings(KeyValuePair<string, object?>[] tags) =>
            tags.ToDictionary(t => t.Key, t => Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "");
    }
}
