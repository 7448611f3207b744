namespace Gateway.Workers;

/// <summary>
/// What makes a process a worker of the prefork pool: its index, the pool's size and mode, and the listen
/// sockets the supervisor passed it, by listener key. The host serves only those listeners, on those sockets.
/// </summary>
public sealed record WorkerRole(int Index, int Workers, string Mode, IReadOnlyDictionary<string, WorkerSockets> Sockets);

/// <summary>A listener's sockets in one worker (one per listen address) and the port they share.</summary>
public sealed record WorkerSockets(int Port, IReadOnlyList<int> Descriptors);
