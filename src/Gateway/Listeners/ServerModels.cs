namespace Gateway.Listeners;

/// <summary>The I/O models a listener can run on (README, "Comparison").</summary>
public static class ServerModels
{
    public const string Kestrel = "kestrel";

    public static IReadOnlyList<string> All { get; } =
        [Kestrel, "epoll", "epoll-et", "poll", "select", "threads", "iterative", "prefork"];

    /// <summary>The models this build implements; the others are accepted names that fail clearly at start.</summary>
    public static IReadOnlyList<string> Available { get; } = [Kestrel, "epoll", "epoll-et", "poll", "select", "threads", "iterative", Prefork];

    /// <summary>Served by worker processes (src/Gateway/Workers), not by the process that reads the configuration.</summary>
    public const string Prefork = "prefork";

    public static IReadOnlyList<string> WorkerModes { get; } = ["async", "sync", "per-connection"];

    /// <summary>The worker modes this build implements.</summary>
    public static IReadOnlyList<string> AvailableWorkerModes { get; } = ["async", "sync", "per-connection"];
}

/// <summary>The protocols a listener can serve; a listener's configuration key names its protocol.</summary>
public enum ListenerProtocol
{
    Echo,
    Rpc,
    Ftp,
}
