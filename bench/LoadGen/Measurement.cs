using System.Diagnostics;
using HdrHistogram;

namespace Gateway.LoadGen;

/// <summary>The run's instants in <see cref="Stopwatch"/> ticks: sending starts, measuring starts, everything stops.</summary>
internal readonly record struct RunClock(long Start, long MeasureFrom, long StopAt)
{
    public static RunClock StartingNow(TimeSpan warmup, TimeSpan duration)
    {
        var start = Stopwatch.GetTimestamp();
        var measureFrom = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        return new RunClock(start, measureFrom, measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency));
    }

    public static double Seconds(long ticks) => ticks / (double)Stopwatch.Frequency;
}

/// <summary>
/// What one connection (or one reconnecting client) measured. Only its own loops write it; the progress line
/// reads <see cref="Replies"/> while they run, everything else is read after they end.
/// </summary>
internal sealed class ConnectionStats
{
    private static int s_reported;
    private long _replies;

    public LongHistogram Latency { get; } = new(TimeStamp.Minutes(1), 3);

    /// <summary>Replies in the measured window: the run's request count.</summary>
    public long Requests { get; set; }

    /// <summary>Error replies (RESP <c>-ERR</c>).</summary>
    public long ErrorReplies { get; set; }

    /// <summary>Requests of the measured window with no reply by the time the run gave up waiting (open loop).</summary>
    public long Unanswered { get; set; }

    public bool Failed { get; set; }

    /// <summary>Every reply so far, warm-up included.</summary>
    public long Replies => Volatile.Read(ref _replies);

    public void CountReply() => Volatile.Write(ref _replies, _replies + 1);

    /// <summary>A latency in ticks; anything past the histogram's range counts as its highest value.</summary>
    public void Record(long ticks) => Latency.RecordValue(Math.Clamp(ticks, 0, Latency.HighestTrackableValue));

    /// <summary>The connection got an error reply or bytes that are no reply: counted, and the first in the run is shown.</summary>
    public void FailOn(int verdict, ReadOnlySpan<byte> reply)
    {
        Failed = true;
        if (verdict == Wire.ErrorReply)
        {
            ErrorReplies++;
        }

        if (Interlocked.Exchange(ref s_reported, 1) == 0)
        {
            Console.Error.WriteLine($"LoadGen: {(verdict == Wire.ErrorReply ? "error reply" : "unexpected reply")} '{Wire.Describe(reply)}'; the connection counts as failed");
        }
    }
}
