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
public sealed class ConnectionRegistry(ILogger<ConnectionRegistry>? logger = null)
{
    private readonly ConcurrentDictionary<string, ConnectionRecord> _live = new(StringComparer.Ordinal);
    private long _sequence;
    private int _count;
    private ClosingAll? _closingAll;
    private RecordSinks? _sinks; // the metrics' and log's, shared by the records made here

    public int Count => Volatile.Read(ref _count);

    /// <summary>Records <paramref name="connection"/>, whose bytes <paramref name="traffic"/> counts.</summary>
    public ConnectionRecord Register(ConnectionContext connection, ListenerStats listener, ITransportTrafficFeature? traffic, GatewayMetrics? metrics = null)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentNullException.ThrowIfNull(listener);
        var sinks = _sinks is { } known && known.Metrics == metrics ? known : _sinks = new RecordSinks(metrics, logger);
        var record = new ConnectionRecord(Interlocked.Increment(ref _sequence), connection.ConnectionId, listener, connection, traffic, sinks);
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
        if (Volatile.Read(ref _closingAll) is { } closing)
        {
            // Accepted just as a drain began: asked to close like the rest.
            record.RequestClose(closing.Reason, closing.Grace);
        }
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

    /// <summary>
    /// Asks every live connection to close (see <see cref="ConnectionRecord.RequestClose"/>), and every one
    /// registered from now on as it comes (a drain stops the listeners first, but a connection accepted just
    /// before may register after this). Returns how many were asked now.
    /// </summary>
    public int RequestCloseAll(string reason, TimeSpan grace)
    {
        Volatile.Write(ref _closingAll, new ClosingAll(reason, grace)); // before the walk: an Add either is walked or sees it
        return _live.Values.Count(record => record.RequestClose(reason, grace));
    }

    /// <summary>Closes every live connection now.</summary>
    public void AbortAll(string reason)
    {
        foreach (var record in _live.Values)
        {
            record.Abort(reason);
        }
    }

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
        var field = ParseSortField(query.Sort?.TrimStart('-', '+'));
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

            // In long: offset + limit may pass int.MaxValue. More than every match is never needed.
            var needed = (int)Math.Clamp((long)offset + limit, 0, count);
            var ordered = Order(matches.AsSpan(0, count), needed, new SortOrder(descending));
            var page = new List<ConnectionSnapshot>(Math.Max(0, Math.Min(limit, ordered.Length - offset)));
            for (var i = offset; i < ordered.Length; i++)
            {
                page.Add(ordered[i].Record.Snapshot(now));
            }

            return new ConnectionPage(count, offset, limit, page);
        }
        finally
        {
            ArrayPool<SortEntry>.Shared.Return(matches, clearArray: true);
        }
    }

    /// <summary>
    /// The first <paramref name="needed"/> entries in order. A page near the front (the usual case) is
    /// selected with a bounded heap, O(n log k), instead of sorting every match.
    /// </summary>
    private static Span<SortEntry> Order(Span<SortEntry> entries, int needed, SortOrder order)
    {
        if (needed >= entries.Length / 4)
        {
            entries.Sort(order);
            return entries[..Math.Min(needed, entries.Length)];
        }

        // The heap's root is the worst of the best `needed` seen so far; a better entry replaces it.
        var best = new PriorityQueue<SortEntry, SortEntry>(needed + 1, order.Reversed);
        foreach (var entry in entries)
        {
            if (best.Count < needed)
            {
                best.Enqueue(entry, entry);
            }
            else
            {
                best.EnqueueDequeue(entry, entry);
            }
        }

        var selected = entries[..best.Count];
        for (var i = 0; best.TryDequeue(out var entry, out _); i++)
        {
            selected[i] = entry;
        }

        selected.Sort(order);
        return selected;
    }

    private static bool Matches(ConnectionRecord record, ConnectionQuery query, long now, long minIdleMs) =>
        (string.IsNullOrEmpty(query.Protocol) || record.Listener.Protocol.Equals(query.Protocol, StringComparison.OrdinalIgnoreCase))
        && (string.IsNullOrEmpty(query.Model) || record.Listener.Model.Equals(query.Model, StringComparison.OrdinalIgnoreCase))
        && (query.Remote is null || record.Remote.StartsWith(query.Remote, StringComparison.OrdinalIgnoreCase))
        && (minIdleMs <= 0 || now - record.LastActivityTick >= minIdleMs);

    private enum SortField
    {
        ConnectedAt,
        LastActivityAt,
        Age,
        Idle,
        BytesIn,
        BytesOut,
        Messages,
        Listener,
        Remote,
        Protocol,
        Model,
        Id,
    }

    // ConnectionQuery.Problem() has already refused unknown names.
    private static SortField ParseSortField(string? name) =>
        string.IsNullOrEmpty(name) ? SortField.ConnectedAt : Enum.Parse<SortField>(name, ignoreCase: true);

    private static long NumericKey(ConnectionRecord record, SortField field) => field switch
    {
        SortField.LastActivityAt => record.LastActivityTick,
        SortField.Idle => -record.LastActivityTick,
        SortField.Age => -record.Number,
        SortField.BytesIn => record.BytesIn,
        SortField.BytesOut => record.BytesOut,
        SortField.Messages => record.Messages,
        SortField.Listener => record.ListenerPort,
        _ => record.Number, // connectedAt, and the tie-break for text keys
    };

    private static string? TextKey(ConnectionRecord record, SortField field) => field switch
    {
        SortField.Remote => record.Remote,
        SortField.Protocol => record.Listener.Protocol,
        SortField.Model => record.Listener.Model,
        SortField.Id => record.Id,
        _ => null,
    };

    private readonly record struct SortEntry(long Key, string? Text, ConnectionRecord Record);

    /// <summary>By text key (when sorting by one), then numeric key, then arrival, so every order is total.</summary>
    private readonly struct SortOrder(bool descending) : IComparer<SortEntry>
    {
        public IComparer<SortEntry> Reversed => new SortOrder(!descending);

        public int Compare(SortEntry a, SortEntry b)
        {
            if (descending)
            {
                (a, b) = (b, a);
            }

            if (a.Text is not null || b.Text is not null)
            {
                var byText = string.CompareOrdinal(a.Text, b.Text);
                if (byText != 0)
                {
                    return byText;
                }
            }

            var byKey = a.Key.CompareTo(b.Key);
            return byKey != 0 ? byKey : a.Record.Number.CompareTo(b.Record.Number);
        }
    }

    private sealed record ClosingAll(string Reason, TimeSpan Grace);
}
