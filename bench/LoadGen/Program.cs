using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using HdrHistogram;

// Closed-loop load: each connection sends `pipeline` requests, waits for every reply, and repeats until the
// time is up. Requests are encoded once; replies are counted by their length prefix and not parsed, so the
// generator spends its CPU on sockets rather than on JSON. One JSON line on stdout per run.
// With --reconnect 1 each client opens a new connection for every batch (connect, requests, close): the
// connection rate, and latency measured from the connect.
var options = LoadOptions.Parse(args);
if (options is null)
{
    Console.Error.WriteLine(LoadOptions.Usage);
    return 2;
}

var endpoint = new IPEndPoint(IPAddress.Parse(options.Host), options.Port);
var request = options.BuildRequest();
var batch = Enumerable.Repeat(request, options.Pipeline).SelectMany(r => r).ToArray();
var start = Stopwatch.GetTimestamp();
var measureFrom = start + (long)(options.Warmup.TotalSeconds * Stopwatch.Frequency);
var stopAt = measureFrom + (long)(options.Duration.TotalSeconds * Stopwatch.Frequency);

var sockets = new List<Socket>();
for (var i = 0; i < options.Connections && !options.Reconnect; i++)
{
    sockets.Add(await ConnectAsync());
}

var results = options.Reconnect
    ? await Task.WhenAll(Enumerable.Range(0, options.Connections).Select(_ => Task.Run(RunReconnectingAsync)))
    : await Task.WhenAll(sockets.Select(s => Task.Run(() => RunConnectionAsync(s))));
var latency = new LongHistogram(TimeStamp.Minutes(1), 3);
long requests = 0, errors = 0;
foreach (var (histogram, count, failed) in results)
{
    latency.Add(histogram);
    requests += count;
    errors += failed ? 1 : 0;
}

foreach (var socket in sockets)
{
    socket.Dispose();
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
    ["message_bytes"] = request.Length,
    ["duration_s"] = seconds,
    ["requests"] = requests,
    ["rps"] = Math.Round(requests / seconds),
    ["mbps"] = Math.Round(requests * (double)request.Length * 8 / seconds / 1e6, 1),
    ["p50_us"] = Math.Round(Micros(50), 1),
    ["p90_us"] = Math.Round(Micros(90), 1),
    ["p99_us"] = Math.Round(Micros(99), 1),
    ["p999_us"] = Math.Round(Micros(99.9), 1),
    ["max_us"] = Math.Round(latency.TotalCount == 0 ? 0 : latency.GetMaxValue() / (Stopwatch.Frequency / 1e6), 1),
    ["failed_connections"] = errors,
};
Console.WriteLine(JsonSerializer.Serialize(report));
return errors == 0 && requests > 0 ? 0 : 1;

async Task<Socket> ConnectAsync()
{
    var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    await socket.ConnectAsync(endpoint);
    return socket;
}

// One client that connects anew for every batch: each batch's latency runs from its connect to its last reply.
async Task<(LongHistogram Histogram, long Requests, bool Failed)> RunReconnectingAsync()
{
    var histogram = new LongHistogram(TimeStamp.Minutes(1), 3);
    long done = 0;
    while (Stopwatch.GetTimestamp() < stopAt)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            using var socket = await ConnectAsync();
            var (_, requests, failed) = await RunConnectionAsync(socket, once: true, started);
            if (failed)
            {
                return (histogram, done, true);
            }

            if (requests > 0)
            {
                histogram.RecordValue(Stopwatch.GetTimestamp() - started);
                done++;
            }
        }
        catch (SocketException)
        {
            return (histogram, done, true);
        }
    }

    return (histogram, done, false);
}

async Task<(LongHistogram Histogram, long Requests, bool Failed)> RunConnectionAsync(Socket socket, bool once = false, long connectedAt = 0)
{
    var histogram = new LongHistogram(TimeStamp.Minutes(1), 3);
    var buffer = new byte[Math.Max(64 * 1024, request.Length * options.Pipeline * 2)];
    int filled = 0;
    long done = 0;
    var batches = 0;
    try
    {
        while (true)
        {
            var sent = once ? connectedAt : Stopwatch.GetTimestamp();
            if (sent >= stopAt || (once && batches++ > 0))
            {
                return (histogram, done, false);
            }

            await socket.SendAsync(batch, SocketFlags.None);
            for (var pending = options.Pipeline; pending > 0;)
            {
                // Consume every whole reply in the buffer, then read more.
                int offset = 0, length;
                while (pending > 0 && (length = options.ReplyLength(buffer.AsSpan(offset, filled - offset))) > 0)
                {
                    offset += length;
                    pending--;
                    var now = Stopwatch.GetTimestamp();
                    if (sent >= measureFrom && now <= stopAt)
                    {
                        histogram.RecordValue(now - sent);
                        done++;
                    }
                }

                buffer.AsSpan(offset, filled - offset).CopyTo(buffer);
                filled -= offset;
                if (pending > 0)
                {
                    if (filled == buffer.Length)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    var n = await socket.ReceiveAsync(buffer.AsMemory(filled), SocketFlags.None);
                    if (n == 0)
                    {
                        return (histogram, done, true);
                    }

                    filled += n;
                }
            }
        }
    }
    catch (SocketException)
    {
        return (histogram, done, true);
    }
}

internal sealed record LoadOptions(string Host, int Port, string Protocol, int Connections, int Pipeline,
    TimeSpan Duration, TimeSpan Warmup, string Method, string Params, int MessageBytes, bool Reconnect = false)
{
    public const string Usage = """
        usage: LoadGen --port N [--host 127.0.0.1] [--protocol rpc|echo] [--connections 16] [--pipeline 1]
                       [--duration 10] [--warmup 2] [--method ping] [--params '"x"'] [--message-bytes 64]
                       [--reconnect 0|1]
        """;

    public static LoadOptions? Parse(string[] args)
    {
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                return null;
            }

            values[args[i][2..]] = args[i + 1];
        }

        if (args.Length % 2 != 0 || !values.ContainsKey("port"))
        {
            return null;
        }

        string Get(string key, string fallback) => values.GetValueOrDefault(key, fallback);
        int Int(string key, int fallback) => int.Parse(Get(key, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        return new LoadOptions(Get("host", "127.0.0.1"), Int("port", 0), Get("protocol", "rpc"), Int("connections", 16),
            Int("pipeline", 1), TimeSpan.FromSeconds(Int("duration", 10)), TimeSpan.FromSeconds(Int("warmup", 2)),
            Get("method", "ping"), Get("params", "\"x\""), Int("message-bytes", 64), Int("reconnect", 0) == 1);
    }

    /// <summary>One request as sent on the wire: an RPC frame, or an echo message.</summary>
    public byte[] BuildRequest()
    {
        if (Protocol == "echo")
        {
            return Enumerable.Range(0, MessageBytes).Select(i => (byte)('a' + i % 26)).ToArray();
        }

        var body = Encoding.UTF8.GetBytes($"{{\"in\":{JsonSerializer.Serialize(Method)},\"params\":{Params}}}");
        var frame = new byte[4 + body.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)body.Length);
        body.CopyTo(frame, 4);
        return frame;
    }

    /// <summary>The length of the whole reply at the start of <paramref name="received"/>, or 0 if it is not all there.</summary>
    public int ReplyLength(ReadOnlySpan<byte> received)
    {
        if (Protocol == "echo")
        {
            return received.Length >= MessageBytes ? MessageBytes : 0;
        }

        if (received.Length < 4)
        {
            return 0;
        }

        var length = 4 + (int)BinaryPrimitives.ReadUInt32LittleEndian(received);
        return received.Length >= length ? length : 0;
    }
}
