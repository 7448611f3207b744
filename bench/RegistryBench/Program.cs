using System.Diagnostics;
using System.Net;
using System.Text.Json;
using Gateway.Admin;
using Gateway.Connections;
using Gateway.Listeners;
using Microsoft.AspNetCore.Connections;

// The admin listing with many connections: N records (default 100k) in the real registry, listed in pages
// the way GET /admin/connections does, page serialised with the admin JSON context. Median of the runs.
var count = args.Length > 0 ? int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture) : 100_000;
const int Runs = 21;
var registry = new ConnectionRegistry();
ListenerStats Listener(string name, int port) =>
    new(new ListenerEndpoint($"Gateway:Listeners:{name}", name, Enum.Parse<ListenerProtocol>(name, true), "kestrel", IPAddress.Loopback, false, port));
var echo = Listener("echo", 7007);
var rpc = Listener("rpc", 7008);
var random = new Random(42);

var registering = Stopwatch.StartNew();
var records = new ConnectionRecord[count];
var traffic = new Traffic[count];
Parallel.For(0, count, i =>
{
    var listener = i % 4 == 0 ? rpc : echo;
    var remote = new IPEndPoint(IPAddress.Parse($"127.0.{i / 60000 % 256}.{1 + i / 250 % 250}"), 1024 + i % 60000);
    var connection = new DefaultConnectionContext($"c{i}") { RemoteEndPoint = remote, LocalEndPoint = new IPEndPoint(IPAddress.Loopback, listener.Port) };
    var record = new ConnectionRecord(registry.NextNumber(), connection.ConnectionId, listener, connection, traffic[i] = new Traffic());
    registry.Add(record);
    records[i] = record;
});
registering.Stop();
foreach (var counts in traffic)
{
    (counts.BytesReceived, counts.BytesSent) = (random.Next(1, 1_000_000), random.Next(1, 1_000_000));
}

var json = new JsonSerializerOptions(JsonSerializerDefaults.Web) { TypeInfoResolver = AdminJsonContext.Default };
Console.WriteLine($"{count} connections registered in {registering.Elapsed.TotalMilliseconds:F0} ms ({count / registering.Elapsed.TotalSeconds:F0}/s, 2 threads)");
Measure("first page, default order (limit 100)", new ConnectionQuery());
Measure("first page, sort=-bytesIn", new ConnectionQuery { Sort = "-bytesIn" });
Measure("protocol=rpc, sort=-bytesOut, limit 1000", new ConnectionQuery { Protocol = "rpc", Sort = "-bytesOut", Limit = 1000 });
Measure("remote=127.0.0.1 prefix, sort=remote", new ConnectionQuery { Remote = "127.0.0.1", Sort = "remote" });
Measure("deep page: offset 99000, sort=idle", new ConnectionQuery { Offset = Math.Max(0, count - 1000), Sort = "idle" });
Measure("minIdleSeconds=3600 (no match)", new ConnectionQuery { MinIdleSeconds = 3600 });

var removing = Stopwatch.StartNew();
Parallel.ForEach(records, registry.Unregister);
Console.WriteLine($"{count} connections unregistered in {removing.Elapsed.TotalMilliseconds:F0} ms; left: {registry.Count}");

void Measure(string name, ConnectionQuery query)
{
    var times = new double[Runs];
    var bytes = 0;
    var total = 0;
    for (var run = 0; run < Runs; run++)
    {
        var started = Stopwatch.GetTimestamp();
        var page = registry.List(query);
        bytes = JsonSerializer.SerializeToUtf8Bytes(page, json).Length;
        times[run] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        total = page.Total;
    }

    Array.Sort(times);
    Console.WriteLine($"{name,-45} median {times[Runs / 2],7:F2} ms  max {times[^1],7:F2} ms  total {total,6}  page JSON {bytes,7} B");
}

/// <summary>A connection's counters as its transport would keep them.</summary>
internal sealed class Traffic : ITransportTrafficFeature
{
    public long BytesReceived { get; set; }

    public long BytesSent { get; set; }

    public long LastActivityTick { get; } = Environment.TickCount64;
}
