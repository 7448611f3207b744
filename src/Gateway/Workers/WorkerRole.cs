namespace Gateway.Workers;

/// <summary>
/// What makes a process a worker of the prefork pool: its index, the pool's size and mode, and the listen
/// sockets the supervisor passed it, by listener key. The host serves only those listeners, on those sockets.
/// </summary>
public sealed record WorkerRole(int Index, int Workers, string Mode, IReadOnlyDictionary<string, WorkerSockets> Sockets)
{
    /// <summary>A per-connection worker's connection is over: the worker exits.</summary>
    public TaskCompletionSource Served { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// A listener's sockets in one worker (one per listen address) and the port they share; or, for a
/// per-connection worker (<paramref name="Connected"/>), the one connection it serves.
/// </summary>
public sealed record WorkerSockets(int Port, IReadOnlyList<int> Descriptors, bool Connected = false);
