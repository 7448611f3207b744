using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Gateway.LoadGen;

/// <summary>
/// Closed loop: each connection sends <c>pipeline</c> requests, waits for every reply, and repeats until the
/// time is up; latency runs from the batch's send to each reply. Reconnecting clients open a new connection
/// for every batch (connect, requests, close): the connection rate, with latency measured from the connect.
/// </summary>
internal sealed class ClosedLoop(IPEndPoint endpoint, Wire wire, int pipeline, RunClock clock)
{
    private readonly byte[] _batch = Enumerable.Repeat(wire.Request, pipeline).SelectMany(r => r).ToArray();

    public Task RunAsync(Socket socket, ConnectionStats stats) => RunAsync(socket, stats, once: false, connectedAt: 0);

    /// <summary>One client that connects anew for every batch: each batch's latency runs from its connect to its last reply.</summary>
    public async Task RunReconnectingAsync(ConnectionStats stats)
    {
        while (Stopwatch.GetTimestamp() < clock.StopAt)
        {
            var started = Stopwatch.GetTimestamp();
            try
            {
                using var socket = await Tcp.ConnectAsync(endpoint);
                var measured = await RunAsync(socket, stats, once: true, started);
                if (stats.Failed)
                {
                    return;
                }

                stats.CountReply();
                if (measured > 0)
                {
                    stats.Record(Stopwatch.GetTimestamp() - started);
                    stats.Requests++;
                }
            }
            catch (SocketException)
            {
                stats.Failed = true;
                return;
            }
        }
    }

    /// <summary>
    /// Batches until the time is up (or one batch, timed from <paramref name="connectedAt"/>, when <paramref name="once"/>);
    /// returns the replies that fell in the measured window. Each is recorded unless <paramref name="once"/>.
    /// </summary>
    private async Task<long> RunAsync(Socket socket, ConnectionStats stats, bool once, long connectedAt)
    {
        var replies = new ReplyReader(wire, Math.Max(64 * 1024, _batch.Length * 2));
        long measured = 0;
        var batches = 0;
        try
        {
            while (true)
            {
                var sent = once ? connectedAt : Stopwatch.GetTimestamp();
                if (sent >= clock.StopAt || (once && batches++ > 0))
                {
                    return measured;
                }

                await socket.SendAsync(_batch.AsMemory(), SocketFlags.None);
                for (var pending = pipeline; pending > 0;)
                {
                    // Count every whole reply received, then receive more.
                    int length;
                    while (pending > 0 && (length = replies.Next()) != Wire.Incomplete)
                    {
                        if (length < 0)
                        {
                            stats.FailOn(length, replies.Unread);
                            return measured;
                        }

                        pending--;
                        var now = Stopwatch.GetTimestamp();
                        if (sent >= clock.MeasureFrom && now <= clock.StopAt)
                        {
                            measured++;
                            if (!once)
                            {
                                stats.Record(now - sent);
                                stats.Requests++;
                            }
                        }

                        if (!once)
                        {
                            stats.CountReply();
                        }
                    }

                    if (pending > 0)
                    {
                        var received = await socket.ReceiveAsync(replies.FreeSpace(), SocketFlags.None);
                        if (received == 0)
                        {
                            stats.Failed = true;
                            return measured;
                        }

                        replies.Advance(received);
                    }
                }
            }
        }
        catch (SocketException)
        {
            stats.Failed = true;
            return measured;
        }
    }
}
