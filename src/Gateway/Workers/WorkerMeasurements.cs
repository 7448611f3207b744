using System.Diagnostics.Metrics;
using System.Globalization;

namespace Gateway.Workers;

/// <summary>
/// A worker's per-message counters (protocol errors, rejections, FTP transfers — every counter of the
/// <c>Gateway</c> meter), gathered with a <see cref="MeterListener"/> and handed to the supervisor as deltas
/// with each heartbeat. The supervisor adds them to its own instruments with a <c>worker</c> tag, so one scrape
/// of its /metrics covers the whole pool. Request durations travel beside them, from the worker's
/// <see cref="Telemetry.RequestDurations"/> (the SDK histogram of that name, there only with OTLP on, is not
/// gathered: it holds the same requests). Observable instruments are not gathered either: the supervisor
/// observes the connection and byte counts from the heartbeat's <see cref="ListenerCounts"/>.
/// </summary>
internal sealed class WorkerMeasurements : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly List<CounterSeries> _counters = [];

    public WorkerMeasurements(string meterName)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Name != meterName || instrument is not Counter<long>)
            {
                return;
            }

            var series = new CounterSeries(instrument.Name);
            lock (_counters)
            {
                _counters.Add(series);
            }

            listener.EnableMeasurementEvents(instrument, series);
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((CounterSeries)state!).Add(value, tags));
        _listener.Start();
    }

    /// <summary>What was counted since the last call, per counter and tag set; an unchanged series is left out.</summary>
    public MetricDelta[] TakeDeltas()
    {
        lock (_counters)
        {
            return [.. _counters.SelectMany(i => i.TakeDeltas())];
        }
    }

    public void Dispose() => _listener.Dispose();

    /// <summary>
    /// One counter's series, by tag set. Measurements arrive on any thread; a series is found by the hash of
    /// the caller's tags and compared in place, so the request path copies nothing once its series exists.
    /// </summary>
    private sealed class CounterSeries(string name)
    {
        private readonly Dictionary<int, List<(KeyValuePair<string, object?>[] Tags, Series Series)>> _series = [];

        public void Add(long value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            lock (_series)
            {
                Find(tags).Sum += value;
            }
        }

        public List<MetricDelta> TakeDeltas()
        {
            var deltas = new List<MetricDelta>();
            lock (_series)
            {
                foreach (var (tags, series) in _series.Values.SelectMany(sameHash => sameHash))
                {
                    if (series.Sum != 0)
                    {
                        deltas.Add(new MetricDelta(name, Strings(tags)) { Add = series.Sum });
                        series.Sum = 0;
                    }
                }
            }

            return deltas;
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

            var added = new Series();
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

    private sealed class Series
    {
        public long Sum;
    }

    private static Dictionary<string, string> Strings(KeyValuePair<string, object?>[] tags) =>
        tags.ToDictionary(t => t.Key, t => Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? "");
}
