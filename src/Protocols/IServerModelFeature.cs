namespace Gateway.Protocols;

/// <summary>
/// Which I/O model and worker serve a connection. Set by the host on every connection (Kestrel's habit:
/// per-connection facts are features), read by protocols only to report it (RPC <c>whoami</c>).
/// </summary>
public interface IServerModelFeature
{
    string Model { get; }

    /// <summary>The worker process index, or null when served in the host process.</summary>
    int? Worker { get; }
}

public sealed record ServerModelFeature(string Model, int? Worker) : IServerModelFeature;
