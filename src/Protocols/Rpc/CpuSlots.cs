namespace Gateway.Protocols.Rpc;

/// <summary>
/// The CPU a process gives to heavy requests (RPC <c>work</c> past one slice): at most <see cref="Concurrency"/>
/// run at once, and the rest wait in arrival order, so a flood of heavy requests from many connections costs a
/// fixed number of cores instead of every thread the pool can add, and each connection gets its turn. A wait
/// ends when its connection does: a client that leaves takes nothing from the queue.
/// </summary>
/// <remarks>
/// <see cref="SemaphoreSlim"/> queues asynchronous waiters first in, first out, and a release hands its slot to
/// the first waiter (no barging), which is the fairness wanted here; a waiter whose token is cancelled leaves
/// the queue. The waits are asynchronous, so waiting requests hold no thread.
/// </remarks>
public sealed class CpuSlots : IDisposable
{
    private readonly SemaphoreSlim _slots;
    private int _waiting;

    /// <param name="concurrency">How many heavy requests may run at once; at least one.</param>
    public CpuSlots(int concurrency)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrency, 1);
        Concurrency = concurrency;
        _slots = new SemaphoreSlim(concurrency, concurrency);
    }

    /// <summary>The process's queue: one heavy request per core (Environment.ProcessorCount honours a container's CPU limit).</summary>
    public static CpuSlots PerProcess { get; } = new(Environment.ProcessorCount);

    public int Concurrency { get; }

    /// <summary>Heavy requests running now.</summary>
    public int Running => Concurrency - _slots.CurrentCount;

    /// <summary>Heavy requests waiting for a slot now.</summary>
    public int Waiting => Volatile.Read(ref _waiting);

    /// <summary>
    /// Waits for a slot, in turn; dispose the result to give it back. Throws <see cref="OperationCanceledException"/>
    /// when <paramref name="gone"/> fires first (the connection ended), having taken no slot.
    /// </summary>
    public async ValueTask<Slot> EnterAsync(CancellationToken gone)
    {
        Interlocked.Increment(ref _waiting);
        try
        {
            await _slots.WaitAsync(gone);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }

        return new Slot(_slots);
    }

    public void Dispose() => _slots.Dispose();

    /// <summary>A slot held by one running request.</summary>
    public readonly struct Slot(SemaphoreSlim slots) : IDisposable
    {
        public void Dispose() => slots.Release();
    }
}
