using System.IO.Pipelines;

namespace Gateway.Protocols.Framing;

/// <summary>
/// Closes a connection that completes no message for a while. A handler arms it just before it waits for
/// the next message; partial input does not re-arm it, so a client trickling one frame forever still times out.
/// </summary>
/// <remarks>
/// <para>
/// Arming writes a deadline and nothing else: one shared <see cref="IdleHeartbeat"/> finds the deadlines that have
/// passed, as Kestrel's heartbeat does for HTTP, instead of a timer per connection re-armed on every batch. A
/// timeout fires up to one heartbeat late.
/// </para>
/// <para>
/// A handler whose waits are reads of its connection's input and flushes of its output hands those to the
/// constructor and waits without a token: expiry wakes the wait (a cancelled read or flush) and
/// <see cref="ThrowIfExpired"/> after it turns that into the timeout. An idle connection then holds no
/// cancellation source and no registration on one (about 190 bytes). <see cref="Token"/> is for other waits;
/// its source is made when first asked for.
/// </para>
/// </remarks>
public sealed class IdleTimeout : IDisposable
{
    private const long Disarmed = long.MaxValue;

    private readonly long _timeoutMilliseconds;
    private readonly PipeReader? _input;
    private readonly PipeWriter? _output;
    private CancellationTokenSource? _source;
    private long _deadline = Disarmed;
    private int _expired;

    /// <param name="timeout">Zero or <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</param>
    /// <param name="input">A reader whose pending read expiry cancels (the read returns <c>IsCanceled</c>).</param>
    /// <param name="output">A writer whose pending flush expiry cancels (the flush returns <c>IsCanceled</c>).</param>
    public IdleTimeout(TimeSpan timeout, PipeReader? input = null, PipeWriter? output = null)
    {
        if (timeout > TimeSpan.Zero)
        {
            _timeoutMilliseconds = (long)Math.Ceiling(timeout.TotalMilliseconds);
            _input = input;
            _output = output;
            IdleHeartbeat.Add(this);
        }
    }

    private bool Enabled => _timeoutMilliseconds > 0;

    /// <summary>Cancelled when the timeout expires; for waits other than the reader's and writer's given to the constructor.</summary>
    public CancellationToken Token
    {
        get
        {
            if (!Enabled)
            {
                return CancellationToken.None;
            }

            if (Volatile.Read(ref _source) is { } existing)
            {
                return existing.Token;
            }

            var made = new CancellationTokenSource();
            if (Interlocked.CompareExchange(ref _source, made, null) is { } other)
            {
                made.Dispose();
                return other.Token;
            }

            if (HasExpired)
            {
                made.Cancel(); // expired while this was made: nobody has this token yet
            }

            return made.Token;
        }
    }

    public bool HasExpired => Volatile.Read(ref _expired) != 0;

    /// <summary>Internal slot in the heartbeat's list (the heartbeat's lock guards it).</summary>
    internal int Slot { get; set; } = -1;

    public void Arm()
    {
        if (Enabled)
        {
            Volatile.Write(ref _deadline, Environment.TickCount64 + _timeoutMilliseconds);
        }
    }

    /// <summary>After a read or flush that expiry may have cancelled: throws the timeout (an <see cref="OperationCanceledException"/>).</summary>
    public void ThrowIfExpired()
    {
        if (HasExpired)
        {
            throw new OperationCanceledException("the connection was idle for too long");
        }
    }

    public void Dispose()
    {
        if (Enabled)
        {
            IdleHeartbeat.Remove(this);
            _source?.Dispose();
        }
    }

    /// <summary>The heartbeat's check: true once when the deadline has passed (and the timeout is then disarmed).</summary>
    internal bool TakeIfDue(long now)
    {
        var deadline = Volatile.Read(ref _deadline);
        return now >= deadline && Interlocked.CompareExchange(ref _deadline, Disarmed, deadline) == deadline;
    }

    /// <summary>Expires: wakes the waits (on a pool thread: the handler may resume right here).</summary>
    internal void Expire()
    {
        Volatile.Write(ref _expired, 1);
        _input?.CancelPendingRead();
        _output?.CancelPendingFlush();
        try
        {
            Volatile.Read(ref _source)?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // the handler ended in the meantime
        }
    }
}
