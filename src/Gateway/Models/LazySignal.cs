namespace Gateway.Models;

/// <summary>
/// A one-shot signal whose task exists only if someone waits before it fires: a connection's "both directions
/// ended" and "the descriptor is closed" are awaited once, at its end, and an idle connection should not carry
/// two completion sources (88 bytes each) for them meanwhile. A mutable struct: keep it in a field and call it
/// there, never through a copy.
/// </summary>
internal struct LazySignal
{
    private static readonly object Fired = new();

    // null: not fired, nobody waits; Fired; or the source made for a waiter.
    private object? _state;

    /// <summary>Fires it (once; later calls do nothing). A waiter continues on the thread pool.</summary>
    public void Set()
    {
        if (Interlocked.Exchange(ref _state, Fired) is TaskCompletionSource waiter)
        {
            waiter.TrySetResult();
        }
    }

    /// <summary>Completes when it has fired.</summary>
    public Task WaitAsync()
    {
        var state = Volatile.Read(ref _state);
        if (state == Fired)
        {
            return Task.CompletedTask;
        }

        if (state is TaskCompletionSource existing)
        {
            return existing.Task;
        }

        var made = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        return Interlocked.CompareExchange(ref _state, made, null) switch
        {
            null => made.Task,
            TaskCompletionSource other => other.Task,
            _ => Task.CompletedTask, // fired meanwhile
        };
    }
}
