using System.Buffers;
using System.Collections.Concurrent;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Connections;

/// <summary>
/// Every live protocol connection of this process. Register and unregister are O(1) on a concurrent map
/// (striped, no global lock); listing walks the map without locking it, sorts references by one key, and
/// builds snapshots for the requested page only.
/// </summary>
public sealed class ConnectionRegistry
{
    private readonly ConcurrentDictionary<string, ConnectionRecord> _live = new(StringComparer.Ordinal);
    private long _sequence;
    private int _count;

    public int Count => Volatile.Read(ref _count);

    public ConnectionRecord Register(ConnectionContext connection, ListenerStats listener, GatewayMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(listener);
        var record = new ConnectionRecord(Interlocked.Increment(ref _sequence), connection.ConnectionId, listener,
            connection.RemoteEndPoint, connection.LocalEndPoint, connection, metrics);
        Add(record);
        return record;
    }

    /// <summary>Adds a record made elsewhere (benchmarks, and worker connections in a later step).</summary>
    public void Add(ConnectionRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (!_live.TryAdd(record.Id, record))
        {
            throw new InvalidOperationException($"connection id {record.Id} is already registered");
        }

        Interlocked.Increment(ref _count);
        record.Listener.Opened();
    }

    public void Unregister(ConnectionRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (_live.TryRemove(KeyValuePair.Create(record.Id, record)))
        {
            Interlocked.Decrement(ref _count);
            record.Listener.Closed(record.BytesIn, record.BytesOut);
        }
    }

    public long NextNumber() => Interlocked.Increment(ref _sequence);

    public ConnectionRecord? Find(string id) => _live.TryGetValue(id, out var record) ? record : null;

    /// <summary>Bytes of one listener's live connections (closed ones are summed in <see cref="ListenerStats"/>).</summary>
    public (long In, long Out) LiveBytes(ListenerStats listener)
    {
        long bytesIn = 0, bytesOut = 0;
        foreach (var (_, record) in _live)
        {
            if (record.Listener == listener)
            {
                bytesIn += record.BytesIn;
                bytesOut += record.BytesOut;
            }
        }

        return (bytesIn, bytesOut);
    }

    public ConnectionPage List(ConnectionQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var now = Environment.TickCount64;
        var minIdleMs = (long)((query.MinIdleSeconds ?? 0) * 1000);
        var descending = query.Sort?.StartsWith('-') == true;
        var field = query.Sort?.TrimStart('-', '+') is { Length: > 0 } f ? f : "connectedAt";
        var offset = query.Offset ?? 0;
        var limit = query.Limit ?? ConnectionQuery.DefaultLimit;

        var matches = ArrayPool<SortEntry>.Shared.Rent(Math.Max(16, Count + 64));
        var count = 0;
        try
        {
            foreach (var (_, record) in _live)
            {
                if (!Matches(record, query, now, minIdleMs))
                {
                    continue;
                }

                if (count == matches.Length)
                {
                    var larger = ArrayPool<SortEntry>.Shared.Rent(matches.Length * 2);
                    matches.AsSpan(0, count).CopyTo(larger);
                    ArrayPool<SortEntry>.Shared.Return(matches, clearArray: true);
                    matches = larger;
                }

                // The key is read once here: counters keep moving while we sort.
                matches[count++] = new SortEntry(NumericKey(record, field), TextKey(record, field), record);
            }

            var entries = matches.AsSpan(0, count);
            entries.Sort(descending ? SortEntry.Descending : SortEntry.Ascending);
            var page = new List<ConnectionSnapshot>(Math.Max(0, Math.Min(limit, count - offset)));
            for (var i = offset; i < count && page.Count < limit; i++)
            {
                page.Add(entries[i].Record.Snapshot(now));
            }

            return new ConnectionPage(count, offset, limit, page);
        }
        finally
        {
            ArrayPool<SortEntry>.Shared.Return(matches, clearArray: true);
        }
    }

    private static bool Matches(ConnectionRecord record, ConnectionQuery query, long now, long minIdleMs) =>
        (query.Protocol is null || record.Listener.Protocol.Equals(query.Protocol, StringComparison.OrdinalIgnoreCase))
        && (query.Model is null || record.Listener.Model.Equals(query.Model, StringComparison.OrdinalIgnoreCase))
        && (query.Remote is null || record.Remote.StartsWith(query.Remote, StringComparison.OrdinalIgnoreCase))
        && (minIdleMs <= 0 || now - record.LastActivityTick >= minIdleMs);

    private static long NumericKey(ConnectionRecord record, string field) => field.ToLowerInvariant() switch
    {
        "lastactivityat" => record.LastActivityTick,
        "idle" => -record.LastActivityTick,
        "age" => -record.Number,
        "bytesin" => record.BytesIn,
        "bytesout" => record.BytesOut,
        "messages" => record.Messages,
        "listener" => record.ListenerPort,
        _ => record.Number, // connectedAt, and the tie-break for text keys
    };

    private static string? TextKey(ConnectionRecord record, string field) => field.ToLowerInvariant() switch
    {
        "remote" => record.Remote,
        "protocol" => record.Listener.Protocol,
        "model" => record.Listener.Model,
        "id" => record.Id,
        _ => null,
    };

    private readonly record struct SortEntry(long Key, string? Text, ConnectionRecord Record)
    {
        public static readonly Comparison<SortEntry> Ascending = Compare;
        public static readonly Comparison<SortEntry> Descending = (a, b) => Compare(b, a);

        private static int Compare(SortEntry a, SortEntry b)
        {
            var byText = string.CompareOrdinal(a.Text, b.Text);
            if (byText != 0)
            {
                return byText;
            }

            var byKey = a.Key.CompareTo(b.Key);
            return byKey != 0 ? byKey : a.Record.Number.CompareTo(b.Record.Number);
        }
    }
}
