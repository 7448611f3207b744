namespace Gateway.Models;

/// <summary>
/// The threads this process may start for the connections of its blocking models (<c>threads</c> and
/// <c>iterative</c>: <see cref="ThreadConnection.ThreadsPerConnection"/> each). A connection that would go over
/// it is refused at accept time, as one over MaxConnections is, instead of the kernel refusing its threads.
/// </summary>
internal sealed class ThreadBudget
{
    /// <summary>
    /// Room kept for the runtime's own threads when the budget comes from the PID limits: an idle gateway has
    /// about twenty, and the thread pool, timers and socket engine may add some under load.
    /// </summary>
    public const int RuntimeHeadroom = 32;

    private int _inUse;

    public ThreadBudget(int max)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(max);
        Max = max;
    }

    public int Max { get; }

    /// <summary>Threads taken now (started, or about to be).</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>
    /// <c>Gateway:Models:MaxThreads</c> when set (above 0); else what the PID limits leave (<see cref="ThreadLimit"/>)
    /// less <see cref="RuntimeHeadroom"/>; else no limit. <paramref name="source"/> says which, for the log; null when
    /// there is no limit.
    /// </summary>
    public static ThreadBudget From(int configured, out string? source)
    {
        if (configured > 0)
        {
            source = "Gateway:Models:MaxThreads";
            return new ThreadBudget(configured);
        }

        if (ThreadLimit.Read() is { } limit)
        {
            source = $"{limit.Source}, less {RuntimeHeadroom} for the runtime";
            return new ThreadBudget((int)Math.Clamp(limit.Room - RuntimeHeadroom, 0, int.MaxValue));
        }

        source = null;
        return new ThreadBudget(int.MaxValue);
    }

    /// <summary>Takes <paramref name="threads"/> if they fit; false (nothing taken) if not.</summary>
    public bool TryTake(int threads)
    {
        if (Interlocked.Add(ref _inUse, threads) > Max)
        {
            Interlocked.Add(ref _inUse, -threads);
            return false;
        }

        return true;
    }

    /// <summary>A thread taken with <see cref="TryTake"/> has ended, or never started.</summary>
    public void Return(int threads = 1) => Interlocked.Add(ref _inUse, -threads);
}
