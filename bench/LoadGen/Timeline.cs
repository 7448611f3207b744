using System.Diagnostics;

namespace Gateway.LoadGen;

/// <summary>
/// Replies per second from the first request on (<c>--timeline 1</c>): how fast a fresh server reaches its steady
/// rate. Sampled on a timer; each entry is the replies completed in that second, warm-up included.
/// </summary>
internal static class Timeline
{
    public static async Task<List<long>> RecordAsync(IReadOnlyList<ConnectionStats> connections, long start, CancellationToken stop)
    {
        var perSecond = new List<long>();
        long before = 0;
        var next = start;
        try
        {
            while (true)
            {
                next += Stopwatch.Frequency;
                var wait = RunClock.Seconds(next - Stopwatch.GetTimestamp());
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds(wait), stop);
                }

                var replies = connections.Sum(c => c.Replies);
                perSecond.Add(replies - before);
                before = replies;
            }
        }
        catch (OperationCanceledException)
        {
            // The run is over; a partial last second is left out.
        }

        return perSecond;
    }

    /// <summary><c>--marks 1</c>: a line on stderr as the measured window opens and another as it closes.</summary>
    public static async Task MarkWindowAsync(RunClock clock, CancellationToken stop)
    {
        try
        {
            foreach (var (at, mark) in new[] { (clock.MeasureFrom, "LoadGen: measuring"), (clock.StopAt, "LoadGen: measured") })
            {
                var wait = RunClock.Seconds(at - Stopwatch.GetTimestamp());
                try
                {
                    if (wait > 0)
                    {
                        await Task.Delay(TimeSpan.FromSeconds(wait), stop);
                    }
                }
                catch (OperationCanceledException) when (Stopwatch.GetTimestamp() >= at)
                {
                    // The clients stopped on time, before this timer woke: the edge has passed all the same.
                }

                Console.Error.WriteLine(mark);
            }
        }
        catch (OperationCanceledException)
        {
            // Every client ended before the window closed: no closing mark, so the caller has no window.
        }
    }
}
