using System.Diagnostics;

namespace Gateway.LoadGen;

/// <summary>A line on stderr every 5 s of a long run, so a stall shows while it happens.</summary>
internal static class Progress
{
    private static readonly TimeSpan Every = TimeSpan.FromSeconds(5);

    /// <summary>Reports until <paramref name="stop"/>: seconds since <paramref name="start"/> and the replies counted so far.</summary>
    public static async Task ReportAsync(IReadOnlyList<ConnectionStats> connections, long start, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(Every);
        long before = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                var replies = connections.Sum(c => c.Replies);
                var elapsed = RunClock.Seconds(Stopwatch.GetTimestamp() - start);
                Console.Error.WriteLine($"progress: {elapsed:F0} s, {replies} requests completed ({(replies - before) / Every.TotalSeconds:F0}/s in the last {Every.TotalSeconds:F0} s)");
                before = replies;
            }
        }
        catch (OperationCanceledException)
        {
            // The run is over.
        }
    }
}
