using System.Diagnostics;
using Gateway.Admin;

namespace Gateway.Workers;

/// <summary>
/// One place in the pool, filled by one worker process at a time: the supervisor replaces the process when
/// it exits, and the slot keeps its index, its restart count and the channel to whichever process fills it.
/// </summary>
internal sealed class WorkerSlot(int index)
{
    private long _lastHeartbeatTick;

    public int Index { get; } = index;

    public string State { get; set; } = WorkerStates.Starting;

    public Process? Process { get; set; }

    public int Pid { get; set; }

    /// <summary>The secret this slot's current process must present in its hello.</summary>
    public string Token { get; set; } = "";

    public DateTimeOffset StartedAt { get; set; }

    public long StartedTick { get; set; }

    public int Restarts { get; set; }

    public int Connections { get; set; }

    /// <summary>The current process's counters, from its last heartbeat.</summary>
    public ListenerCounts[] Counts { get; set; } = [];

    public ControlChannel? Channel { get; set; }

    /// <summary>per-connection: the accepted connection this slot's process will serve, until it is handed over.</summary>
    public Models.Native.FileDescriptor? Connection { get; set; }

    public WorkerPool.PoolListener? ConnectionListener { get; init; }

    /// <summary>Requests sent to the current process and not answered yet, by request id.</summary>
    public System.Collections.Concurrent.ConcurrentDictionary<long, ControlAnswer> Pending { get; } = new();

    /// <summary>Completes when the current process has said it serves (or has exited).</summary>
    public TaskCompletionSource Ready { get; set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public long LastHeartbeatTick
    {
        get => Volatile.Read(ref _lastHeartbeatTick);
        set => Volatile.Write(ref _lastHeartbeatTick, value);
    }

    public WorkerInfo Snapshot(string mode)
    {
        var (cpu, rss) = ProcessUsage.Read(Pid);
        return new WorkerInfo(Index, Pid, mode, State, StartedAt, Restarts, Connections, cpu, rss);
    }
}

internal static class WorkerStates
{
    public const string Starting = "starting", Ready = "ready", Draining = "draining", Exited = "exited", Restarting = "restarting";
}
