using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;

namespace Gateway.LoadGen;

/// <summary>
/// Open loop: requests leave on a fixed schedule whatever the replies do, so a slow server cannot slow the
/// load down and hide its own stalls (coordinated omission). Connection <c>i</c> of <c>C</c> sends request
/// <c>k</c> at <c>start + (k*C + i)/rate</c>: the connections interleave evenly. A separate receive loop
/// matches replies in order to their scheduled times, and latency runs from the scheduled time, not from when
/// the request actually left. A <see cref="Pacer"/> thread wakes each sender when its next request is due.
/// </summary>
internal sealed class OpenLoop(Wire wire, RunClock clock, double rate, int connections)
{
    // Requests still due after this many in one write go out in the next write, at once.
    private const int MaxBurst = 256;

    // How long replies are awaited after the last scheduled request; the ones still missing are recorded as at least this late.
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private readonly byte[] _burst = Enumerable.Repeat(wire.Request, MaxBurst).SelectMany(r => r).ToArray();
    private readonly Pacer _pacer = new(clock, rate, connections);

    /// <summary>Runs every connection's schedule to the end of the run and waits for its replies.</summary>
    public async Task RunAsync(IReadOnlyList<Socket> sockets, IReadOnlyList<ConnectionStats> stats)
    {
        var running = sockets.Select((socket, i) => RunAsync(socket, i, stats[i])).ToArray();
        _pacer.Start();
        await Task.WhenAll(running);
        _pacer.Join();
    }

    private async Task RunAsync(Socket socket, int index, ConnectionStats stats)
    {
        using var session = new Session(socket, index, stats);
        var left = TimeSpan.FromSeconds(RunClock.Seconds(clock.StopAt - Stopwatch.GetTimestamp()));
        session.SendStop.CancelAfter(left + TimeSpan.FromSeconds(1)); // a bound only: the last request is due before the end
        using var wakeOnStop = session.SendStop.Token.Register(() => _pacer.Wake(index));
        session.ReceiveStop.CancelAfter(left + Grace);
        var sender = Task.Run(() => SendOnScheduleAsync(session));
        var receiver = Task.Run(() => ReceiveInOrderAsync(session));
        await Task.WhenAll(sender, receiver);
    }

    /// <summary>Sends every request due by now in one write, then sleeps until the pacer says the next one is due.</summary>
    private async Task SendOnScheduleAsync(Session session)
    {
        var length = wire.Request.Length;
        long k = 0;
        try
        {
            while (!session.SendStop.IsCancellationRequested)
            {
                var now = Stopwatch.GetTimestamp();
                var due = 0;
                long next;
                while ((next = _pacer.ScheduledAt(k, session.Index)) <= now && next < clock.StopAt && due < MaxBurst)
                {
                    // Queued before it is sent, so its reply always finds it.
                    session.Scheduled.Enqueue(next);
                    k++;
                    due++;
                }

                if (due > 0)
                {
                    await session.Socket.SendAsync(_burst.AsMemory(0, due * length), SocketFlags.None, session.SendStop.Token);
                }
                else if (next >= clock.StopAt)
                {
                    return;
                }
                else
                {
                    // No token here: a cancellable wait allocates every time; a stop wakes the sender through the pacer instead.
                    await _pacer.WaitAsync(session.Index);
                }
            }
        }
        catch (SocketException)
        {
            session.Stats.Failed = true;
        }
        catch (OperationCanceledException)
        {
            // The receive side failed, or a send was still stuck a second after the end.
        }
        finally
        {
            session.SenderDone();
        }
    }

    private async Task ReceiveInOrderAsync(Session session)
    {
        var replies = new ReplyReader(wire, 64 * 1024);
        var stats = session.Stats;
        try
        {
            while (true)
            {
                int length;
                while ((length = replies.Next()) != Wire.Incomplete)
                {
                    if (length < 0)
                    {
                        stats.FailOn(length, replies.Unread);
                        return;
                    }

                    var now = Stopwatch.GetTimestamp();
                    if (!session.Scheduled.TryDequeue(out var scheduled))
                    {
                        stats.FailOn(Wire.Unexpected, replies.Unread);
                        return;
                    }

                    stats.CountReply();
                    if (scheduled >= clock.MeasureFrom && scheduled < clock.StopAt)
                    {
                        stats.Record(now - scheduled);
                        if (now <= clock.StopAt)
                        {
                            stats.Requests++;
                        }
                    }
                }

                if (session.AllAnswered)
                {
                    return;
                }

                var received = await session.Socket.ReceiveAsync(replies.FreeSpace(), SocketFlags.None, session.ReceiveStop.Token);
                if (received == 0)
                {
                    stats.Failed = true;
                    return;
                }

                replies.Advance(received);
            }
        }
        catch (OperationCanceledException) when (session.AllAnswered)
        {
            // The sender finished after the last reply had come in.
        }
        catch (OperationCanceledException)
        {
            // Given up waiting: the missing replies are at least this late.
            var now = Stopwatch.GetTimestamp();
            while (session.Scheduled.TryDequeue(out var scheduled))
            {
                if (scheduled >= clock.MeasureFrom)
                {
                    stats.Record(now - scheduled);
                    stats.Unanswered++;
                }
            }
        }
        catch (SocketException)
        {
            stats.Failed = true;
        }
        finally
        {
            if (stats.Failed)
            {
                session.SendStop.Cancel();
            }
        }
    }

    /// <summary>One connection's two loops and what they share: the scheduled times of requests not yet answered.</summary>
    private sealed class Session(Socket socket, int index, ConnectionStats stats) : IDisposable
    {
        private int _senderDone;

        public Socket Socket { get; } = socket;

        public int Index { get; } = index;

        public ConnectionStats Stats { get; } = stats;

        public ConcurrentQueue<long> Scheduled { get; } = new();

        public CancellationTokenSource SendStop { get; } = new();

        /// <summary>Cancelled when nothing more will come (sender done, all answered), or at the grace deadline.</summary>
        public CancellationTokenSource ReceiveStop { get; } = new();

        /// <summary>The sender has finished and every request it sent has its reply.</summary>
        public bool AllAnswered => Volatile.Read(ref _senderDone) == 1 && Scheduled.IsEmpty;

        /// <summary>
        /// Marks the sender finished; if every reply is already in, wakes the receiver, which may be waiting for
        /// bytes that will never come. The exchange orders this against the receiver's dequeue-then-check.
        /// </summary>
        public void SenderDone()
        {
            Interlocked.Exchange(ref _senderDone, 1);
            if (Scheduled.IsEmpty)
            {
                ReceiveStop.Cancel();
            }
        }

        public void Dispose()
        {
            SendStop.Dispose();
            ReceiveStop.Dispose();
        }
    }
}
