using System.Threading.Tasks.Sources;

namespace Gateway.Models;

/// <summary>
/// "The socket can take more output": set by whoever learns it (a reactor's write readiness), awaited by the
/// one sender that hit EAGAIN. Auto-reset; a set with nobody waiting is kept for the next wait (at worst the
/// sender retries once and waits again), so a wake-up between EAGAIN and the wait is never lost.
/// </summary>
internal sealed class WritableSignal : IValueTaskSource
{
    private const int Idle = 0, Set = 1, Waiting = 2, Closed = 3;
    private ManualResetValueTaskSourceCore<bool> _core; // continuations run where Set runs: the reactor's send is cheap
    private int _state;

    public void Signal()
    {
        while (true)
        {
            switch (Volatile.Read(ref _state))
            {
                case Waiting when Interlocked.CompareExchange(ref _state, Idle, Waiting) == Waiting:
                    _core.SetResult(true);
                    return;
                case Idle when Interlocked.CompareExchange(ref _state, Set, Idle) == Idle:
                    return;
                case Set or Closed:
                    return;
            }
        }
    }

    /// <summary>Wakes the sender for good: the connection is going away; its next send fails and it stops.</summary>
    public void Close()
    {
        if (Interlocked.Exchange(ref _state, Closed) == Waiting)
        {
            _core.SetResult(true);
        }
    }

    public ValueTask WaitAsync()
    {
        while (true)
        {
            switch (Volatile.Read(ref _state))
            {
                case Set when Interlocked.CompareExchange(ref _state, Idle, Set) == Set:
                    return ValueTask.CompletedTask;
                case Closed:
                    return ValueTask.CompletedTask;
                case Idle:
                    _core.Reset();
                    if (Interlocked.CompareExchange(ref _state, Waiting, Idle) == Idle)
                    {
                        return new ValueTask(this, _core.Version);
                    }

                    break;
            }
        }
    }

    void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
