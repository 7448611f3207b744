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
}
