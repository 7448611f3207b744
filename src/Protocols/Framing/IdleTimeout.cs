namespace Gateway.Protocols.Framing;

/// <summary>
/// Closes a connection that completes no message for a while. A handler arms it just before it waits for
/// the next message and passes <see cref="Token"/> to that wait; partial input does not re-arm it, so a
/// client trickling one frame forever still times out.
/// </summary>
/// <remarks>
/// Arming writes a deadline and nothing else: one shared <see cref="IdleHeartbeat"/> finds the deadlines that have
/// passed, as Kestrel's heartbeat does for HTTP, instead of a timer per connection re-armed on every batch. A
/// timeout fires up to one heartbeat late.
/// </remarks>
public sealed class IdleTimeout : IDisposable
{
    private const long Disarmed = long.MaxValue;

    private readonly CancellationTokenSource? _source;
    private readonly long _timeoutMilliseconds;
    private long _deadline = Disarmed;

    /// <param name="timeout">Zero or <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</param>
    public IdleTimeout(TimeSpan timeout)
    {
        if (timeout > TimeSpan.Zero)
        {
            _source = new CancellationTokenSource();
            _timeoutMilliseconds = (long)Math.Ceiling(timeout.TotalMilliseconds);
            IdleHeartbeat.Add(this);
        }
    }

    public CancellationToken Token => _source?.Token ?? CancellationToken.None;

    public bool HasExpired => _source?.IsCancellationRequested == true;

    /// <summary>Where this timeout sits in the heartbeat's list (the heartbeat's lock guards it).</summary>
    internal int Slot { get; set; } = -1;

    public void Arm()
    {
        if (_source is not null)
        {
            Volatile.Write(ref _deadline, Environment.TickCount64 + _timeoutMilliseconds);
        }
    }

    public void Dispose()
    {
        if (_source is not null)
        {
            IdleHeartbeat.Remove(this);
            _source.Dispose();
        }
    }

    /// <summary>The heartbeat's check: true once when the deadline has passed (and the timeout is then disarmed).</summary>
    internal bool TakeIfDue(long now)
    {
        var deadline = Volatile.Read(ref _deadline);
        return now >= deadline && Interlocked.CompareExchange(ref _deadline, Disarmed, deadline) == deadline;
    }

    /// <summary>Cancels the token (on a pool thread: its callbacks resume the handler's wait).</summary>
    internal void Expire()
    {
        try
        {
            _source!.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the handler ended in the meantime
        }
    }
}
