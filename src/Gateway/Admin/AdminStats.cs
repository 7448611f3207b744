using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Telemetry;
using Gateway.Workers;
using HdrHistogram;

namespace Gateway.Admin;

/// <summary>One second of the gateway, as the dashboard charts it.</summary>
/// <param name="Connections">Open connections per protocol at the end of the second.</param>
/// <param name="RpcRequests">RPC requests answered during the sample's interval (about a second).</param>
/// <param name="RpcRequestsPerSecond">The same as a rate over the interval's measured length.</param>
/// <param name="RpcLatencyP50Ms">Median time to answer them (null without requests); HdrHistogram, 3 significant digits.</param>
public sealed record StatsSample(
    DateTimeOffset At,
    IReadOnlyDictionary<string, int> Connections,
    double BytesInPerSecond,
    double BytesOutPerSecond,
    long RpcRequests,
    double RpcRequestsPerSecond,
    double? RpcLatencyP50Ms,
    double? RpcLatencyP99Ms,
    double? RpcLatencyMaxMs);

/// <summary>The last samples, oldest first: what GET /admin/stats returns.</summary>
public sealed record StatsSeries(double IntervalSeconds, IReadOnlyList<StatsSample> Samples);

/// <summary>
/// Samples the gateway once a second for the dashboard's charts and keeps the last five minutes, so a page
/// opened now shows history and the browser never parses Prometheus text. Connections and bytes come from
/// the same totals as /admin/listeners; RPC latency from every value <see cref="RequestDurations"/> records
/// (in-process requests and the prefork workers' deltas, which arrive as their bucket means and counts), in an
/// HdrHistogram interval recorder.
/// </summary>
public sealed partial class AdminStats : BackgroundService
{
    public const int Capacity = 300;
    private static readonly TimeSpan Interval = TimeSpan.FromSeconds(1);
    private const long MaxMicroseconds = 3_600_000_000; // an hour: the histogram's range

    private readonly GatewayListeners _listeners;
    private readonly ConnectionRegistry _registry;
    private readonly WorkerPool? _pool;
    private readonly RequestDurations _durations;
    private readonly ILogger? _logger;
    private readonly LogThrottle _failures = new(TimeSpan.FromMinutes(1));

    // Requests end on many threads at once: the recorder's histograms must take concurrent writes. A plain
    // LongHistogram loses increments then, and a total above the sum of its counts makes GetMaxValue throw.
    private readonly Recorder _rpcLatency = new(1, MaxMicroseconds, 3, static (id, lowest, highest, digits) => new LongConcurrentHistogram(id, lowest, highest, digits));

    private readonly Queue<StatsSample> _samples = new(Capacity);
    private HistogramBase? _interval;
    private (long In, long Out, long Ticks)? _last;

    public AdminStats(GatewayListeners listeners, ConnectionRegistry registry, RequestDurations durations, WorkerPool? pool = null,
        ILogger<AdminStats>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(durations);
        _logger = logger;
        _listeners = listeners;
        _registry = registry;
        _pool = pool;
        _durations = durations;
        durations.RpcObserver = RecordRpc;
    }

    /// <summary>The last <paramref name="seconds"/> samples, oldest first.</summary>
    public StatsSeries Read(int seconds)
    {
        lock (_samples)
        {
            return new StatsSeries(Interval.TotalSeconds, _samples.Skip(Math.Max(0, _samples.Count - seconds)).ToArray());
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Interval);
        SampleOrLog();
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            SampleOrLog();
        }
    }

    /// <summary>
    /// A sample that fails costs the dashboard that second, never the gateway: an exception out of a hosted service
    /// stops the host, and with it every listener.
    /// </summary>
    private void SampleOrLog()
    {
        try
        {
            Sample();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            if (_logger is not null && _failures.TryTake(out var count))
            {
                LogSampleFailed(_logger, e, count);
            }
        }
    }

    [LoggerMessage(EventId = 92, Level = LogLevel.Error, Message = "Dashboard statistics: {Count} sample(s) failed since the last report; the gateway goes on")]
    private static partial void LogSampleFailed(ILogger logger, Exception exception, long count);

    public override void Dispose()
    {
        _durations.RpcObserver = null;
        base.Dispose();
    }

    private void RecordRpc(double seconds, long count) =>
        _rpcLatency.RecordValueWithCount(Math.Clamp((long)(seconds * 1e6), 1, MaxMicroseconds), count);

    private void Sample()
    {
        var now = Environment.TickCount64;
        var listeners = ListenerTotals.Read(_listeners, _registry, _pool);
        var bytesIn = listeners.Sum(l => l.BytesIn);
        var bytesOut = listeners.Sum(l => l.BytesOut);
        _interval = _rpcLatency.GetIntervalHistogram(_interval);
        var requests = _interval.TotalCount;

        double inRate = 0, outRate = 0, requestRate = 0;
        if (_last is var (lastIn, lastOut, lastTicks) && now > lastTicks)
        {
            var elapsed = (now - lastTicks) / 1000.0;
            // A restarted worker's counts start again from zero: never a negative rate.
            inRate = Math.Max(0, bytesIn - lastIn) / elapsed;
            outRate = Math.Max(0, bytesOut - lastOut) / elapsed;
            requestRate = requests / elapsed;
        }

        _last = (bytesIn, bytesOut, now);
        var sample = new StatsSample(
            DateTimeOffset.UtcNow,
            listeners.GroupBy(l => l.Protocol).ToDictionary(g => g.Key, g => g.Sum(l => l.Active)),
            inRate,
            outRate,
            requests,
            requestRate,
            requests == 0 ? null : _interval.GetValueAtPercentile(50) / 1000.0,
            requests == 0 ? null : _interval.GetValueAtPercentile(99) / 1000.0,
            requests == 0 ? null : _interval.GetMaxValue() / 1000.0);
        lock (_samples)
        {
            if (_samples.Count == Capacity)
            {
                _samples.Dequeue();
            }

            _samples.Enqueue(sample);
        }
    }
}
