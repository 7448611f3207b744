using System.Collections.Concurrent;

namespace Gateway.Protocols.Rpc;

/// <summary>
/// The CPU a process gives to heavy requests (RPC <c>work</c> past one slice): at most <see cref="Concurrency"/>
/// run at once, each on one of this queue's own threads, and the rest wait in arrival order, so a flood of heavy
/// requests from many connections costs a fixed number of cores instead of every thread the pool can add, and
/// each connection gets its turn. A wait ends when its connection does: a client that leaves takes nothing from
/// the queue.
/// </summary>
/// <remarks>
/// <para>
/// <see cref="SemaphoreSlim"/> queues asynchronous waiters first in, first out, and a release hands its slot to
/// the first waiter (no barging), which is the fairness wanted here; a waiter whose token is cancelled leaves
/// the queue. The waits are asynchronous, so waiting requests hold no thread.
/// </para>
/// <para>
/// The work runs on threads of its own, not the thread pool's: one slot per core would take every thread the
/// pool keeps, and the pool's own work — the transport's signal that a client closed, which is what stops the
/// work, timers, heartbeats — would wait for the pool to add a thread, which it may not do while the cores are
/// busy (a prefork worker computes on for seconds after its clients have left).
/// </para>
/// </remarks>
public sealed class CpuSlots : IDisposable
{
    private readonly SemaphoreSlim _slots;
    private readonly BlockingCollection<Job> _jobs = new(new ConcurrentQueue<Job>());
    private readonly string _threadName;
    private int _threadsStarted;
    private int _waiting;

    /// <param name="concurrency">How many heavy requests may run at once; at least one.</param>
    /// <param name="threadName">What the queue's threads are called (in a debugger, <c>top -H</c>).</param>
    public CpuSlots(int concurrency, string threadName = "CPU work")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(concurrency, 1);
        Concurrency = concurrency;
        _threadName = threadName;
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
    /// Waits for a slot, in turn, then runs <paramref name="work"/> on one of the queue's threads and continues on
    /// the thread pool with its result. Throws <see cref="OperationCanceledException"/> when <paramref name="gone"/>
    /// fires while waiting (having taken no slot); the work is given the token to stop by itself, and what it
    /// throws is thrown here.
    /// </summary>
    public async ValueTask<TResult> RunAsync<TState, TResult>(Func<TState, CancellationToken, TResult> work, TState state, CancellationToken gone)
    {
        ArgumentNullException.ThrowIfNull(work);
        Interlocked.Increment(ref _waiting);
        try
        {
            await _slots.WaitAsync(gone);
        }
        finally
        {
            Interlocked.Decrement(ref _waiting);
        }

        try
        {
            StartThreads();
            var job = new Job<TState, TResult>(work, state, gone);
            _jobs.Add(job, CancellationToken.None); // never blocks: the queue is unbounded, and a job holds a slot
            return await job.Result.Task;
        }
        finally
        {
            _slots.Release();
        }
    }

    public void Dispose()
    {
        _jobs.CompleteAdding();
        _slots.Dispose();
    }

    /// <summary>
    /// The threads start with the first heavy request: most processes never receive one. Never more jobs than
    /// threads are queued (a job holds a slot), so each starts at once.
    /// </summary>
    private void StartThreads()
    {
        if (Volatile.Read(ref _threadsStarted) != 0 || Interlocked.Exchange(ref _threadsStarted, 1) != 0)
        {
            return;
        }

        for (var i = 0; i < Concurrency; i++)
        {
            new Thread(static jobs =>
            {
                foreach (var job in ((BlockingCollection<Job>)jobs!).GetConsumingEnumerable())
                {
                    job.Run();
                }
            })
            {
                IsBackground = true,
                Name = _threadName,
            }.Start(_jobs);
        }
    }

    private abstract class Job
    {
        public abstract void Run();
    }

    private sealed class Job<TState, TResult>(Func<TState, CancellationToken, TResult> work, TState state, CancellationToken gone) : Job
    {
        /// <summary>Completed on the queue's thread; the awaiting request continues on the thread pool.</summary>
        public TaskCompletionSource<TResult> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Run()
        {
            try
            {
                Result.SetResult(work(state, gone));
            }
            catch (Exception e)
            {
                Result.SetException(e);
            }
        }
    }
}
