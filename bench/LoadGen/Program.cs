using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using Gateway.LoadGen;
using HdrHistogram;

// Load on one endpoint, one JSON line on stdout per run. Closed loop by default (ClosedLoop: each connection
// waits for its replies before sending again), open loop with --rate (OpenLoop: requests on a fixed schedule,
// latency from the schedule). --idle first opens connections that only sit there (IdleConnections).

// Socket completions run on the epoll thread rather than hopping to the thread pool: the generator's
// continuations are a few microseconds of counting, and the hop was most of its cost. Read when the first
// socket is made, so set before that; a value already in the environment (e.g. 0) wins.
const string InlineCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
if (Environment.GetEnvironmentVariable(InlineCompletions) is null)
{
    Environment.SetEnvironmentVariable(InlineCompletions, "1");
}

var options = LoadOptions.Parse(args, out var problem);
if (options is null)
{
    if (problem is not null)
    {
        Console.Error.WriteLine($"LoadGen: {problem}");
    }

    Console.Error.WriteLine(LoadOptions.Usage);
    return 2;
}

var endpoint = new IPEndPoint(IPAddress.Parse(options.Host), options.Port);
var wire = new Wire(options);

var descriptors = options.Idle + options.Connections + 64L;
if (FileLimit.RaiseSoftToHard() is { } limit && (ulong)descriptors > limit.Soft)
{
    Console.Error.WriteLine($"LoadGen: {options.Idle} idle + {options.Connections} connections + 64 need {descriptors} descriptors, "
        + $"but RLIMIT_NOFILE allows {limit.Soft} (hard limit {limit.Hard}); raise it first, e.g. as root: "
        + $"ulimit -Hn {descriptors}; ulimit -n {descriptors}");
    return 2;
}

using var idle = options.Idle > 0
    ? await IdleConnections.OpenAsync(endpoint, options.Idle, options.IdleFirstSource, options.IdleSources, options.IdleTimeout)
    : IdleConnections.None;
if (idle is null)
{
    return 1;
}

if (options.HoldOnly)
{
    // One share of a crowd: held until the caller closes stdin (or the duration ends), then counted.
    Console.Error.WriteLine($"LoadGen: holding {idle.Count} idle");
    await Task.WhenAny(Console.In.ReadToEndAsync(), Task.Delay(options.Duration));
    var held = idle.CountOpen();
    Console.WriteLine(JsonSerializer.Serialize(new Dictionary<string, object> { ["idle"] = idle.Count, ["idle_open_at_end"] = held }));
    return held == idle.Count ? 0 : 1;
}

var stats = Enumerable.Range(0, options.Connections).Select(_ => new ConnectionStats()).ToArray();
var clock = RunClock.StartingNow(options.Warmup, options.Duration);
var sockets = new List<Socket>();
try
{
    for (var i = 0; i < options.Connections && !options.Reconnect; i++)
    {
        sockets.Add(await Tcp.ConnectAsync(endpoint));
    }
}
catch (SocketException e)
{
    Console.Error.WriteLine($"LoadGen: connection {sockets.Count + 1} of {options.Connections} to {endpoint}: {e.Message}");
    sockets.ForEach(s => s.Dispose());
    return 1;
}

Task[] clients;
if (options.OpenLoop)
{
    clients = [new OpenLoop(wire, clock, options.Rate, options.Connections).RunAsync(sockets, stats)];
}
else
{
    var closedLoop = new ClosedLoop(endpoint, wire, options.Pipeline, clock);
    clients = options.Reconnect
        ? stats.Select(s => Task.Run(() => closedLoop.RunReconnectingAsync(s))).ToArray()
        : sockets.Select((s, i) => Task.Run(() => closedLoop.RunAsync(s, stats[i]))).ToArray();
}

List<long>? timeline = null;
using (var runOver = new CancellationTokenSource())
{
    var progress = options.Progress ? Progress.ReportAsync(stats, clock.Start, runOver.Token) : Task.CompletedTask;
    var perSecond = options.Timeline ? Timeline.RecordAsync(stats, clock.Start, runOver.Token) : null;
    var marks = options.Marks ? Timeline.MarkWindowAsync(clock, runOver.Token) : Task.CompletedTask;
    await Task.WhenAll(clients);
    await runOver.CancelAsync();
    await progress;
    await marks;
    timeline = perSecond is null ? null : await perSecond;
}

var idleOpen = idle.CountOpen();
foreach (var socket in sockets)
{
    socket.Dispose();
}

var latency = new LongHistogram(TimeStamp.Minutes(1), 3);
long requests = 0, failed = 0, errorReplies = 0, unanswered = 0;
foreach (var connection in stats)
{
    latency.Add(connection.Latency);
    requests += connection.Requests;
    failed += connection.Failed ? 1 : 0;
    errorReplies += connection.ErrorReplies;
    unanswered += connection.Unanswered;
}

if (unanswered > 0)
{
    Console.Error.WriteLine($"LoadGen: {unanswered} requests had no reply by the end of the grace period; recorded as at least that late");
}

if (idleOpen < idle.Count)
{
    Console.Error.WriteLine($"LoadGen: only {idleOpen} of {idle.Count} idle connections were still open at the end");
}

var seconds = options.Duration.TotalSeconds;
double Micros(double percentile) => latency.TotalCount == 0 ? 0 : latency.GetValueAtPercentile(percentile) / (Stopwatch.Frequency / 1e6);
var report = new Dictionary<string, object>
{
    ["protocol"] = options.Protocol,
    ["method"] = options.Protocol == "rpc" ? options.Method : "",
    ["connections"] = options.Connections,
    ["pipeline"] = options.Pipeline,
    ["reconnect"] = options.Reconnect,
    ["message_bytes"] = wire.Request.Length,
    ["duration_s"] = seconds,
    ["requests"] = requests,
    ["rps"] = Math.Round(requests / seconds),
    ["mbps"] = Math.Round(requests * (double)wire.Request.Length * 8 / seconds / 1e6, 1),
    ["p50_us"] = Math.Round(Micros(50), 1),
    ["p90_us"] = Math.Round(Micros(90), 1),
    ["p99_us"] = Math.Round(Micros(99), 1),
    ["p999_us"] = Math.Round(Micros(99.9), 1),
    ["max_us"] = Math.Round(latency.TotalCount == 0 ? 0 : latency.GetMaxValue() / (Stopwatch.Frequency / 1e6), 1),
    ["failed_connections"] = failed,
    ["mode"] = options.OpenLoop ? "open" : "closed",
    ["target_rate"] = options.Rate,
    ["idle"] = idle.Count,
    ["idle_open_at_end"] = idleOpen,
    ["errors"] = errorReplies,
};
if (timeline is not null)
{
    report["timeline"] = timeline;
}

Console.WriteLine(JsonSerializer.Serialize(report));
return failed == 0 && requests > 0 && idleOpen == idle.Count ? 0 : 1;
