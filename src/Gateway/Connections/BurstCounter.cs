namespace Gateway.Connections;

/// <summary>
/// Counts events that are logged once per burst instead of once each (a flood of refused connections must not
/// become a flood of log lines): the first event's line at once, then at most one line per interval, carrying
/// how many events it stands for.
/// </summary>
public sealed class BurstCounter(TimeSpan interval)
{
    private long _sinceLine;
    private long _lastLineTick = -1; // Environment.TickCount64 of the last line; -1: none yet

    /// <summary>Counts one event; true when a line is due now, with the events it covers (this one included).</summary>
    public bool Count(out long events)
    {
        Interlocked.Increment(ref _sinceLine);
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastLineTick);
        if ((last < 0 || now - last >= (long)interval.TotalMilliseconds) && Interlocked.CompareExchange(ref _lastLineTick, now, last) == last)
        {
            events = Interlocked.Exchange(ref _sinceLine, 0);
            return true;
        }

        events = 0;
        return false;
    }
}
