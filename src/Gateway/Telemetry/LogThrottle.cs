namespace Gateway.Telemetry;

/// <summary>
/// Lets one log line through per interval for an event that a client can repeat at will (a refused connection, a
/// cap reached), and counts the occurrences in between, so the line can say how many it stands for. Lock-free:
/// callers race on one compare-and-swap, and the loser's occurrence is counted for the next line.
/// </summary>
public sealed class LogThrottle(TimeSpan interval)
{
    private readonly long _intervalMs = (long)interval.TotalMilliseconds;
    private long _lastLogged = long.MinValue;
    private long _sinceLogged;

    /// <summary>Records one occurrence; true when it is to be logged, with how many occurred since the last line (this one included).</summary>
    public bool TryTake(out long occurrences)
    {
        Interlocked.Increment(ref _sinceLogged);
        var now = Environment.TickCount64;
        var last = Interlocked.Read(ref _lastLogged);
        if ((last == long.MinValue || now - last >= _intervalMs) && Interlocked.CompareExchange(ref _lastLogged, now, last) == last)
        {
            occurrences = Interlocked.Exchange(ref _sinceLogged, 0);
            return true;
        }

        occurrences = 0;
        return false;
    }
}
