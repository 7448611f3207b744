using System.Globalization;

namespace Gateway.LoadGen;

internal sealed record LoadOptions
{
    public const string Usage = """
        usage: LoadGen --port N [--host 127.0.0.1] [--protocol rpc|echo|resp] [--connections 16] [--pipeline 1]
                       [--duration 10] [--warmup 2] [--method ping] [--params '"x"'] [--message-bytes 64]
                       [--reconnect 0|1] [--rate 0] [--idle 0] [--idle-sources S] [--idle-first-source 2]
                       [--idle-timeout 120]
                       [--progress 0|1] [--timeline 0|1] [--marks 0|1]
          --protocol resp  Redis inline PING; every reply must be +PONG (an error reply fails its connection
                           and counts in "errors")
          --rate R         open loop: R requests/s over all connections on a fixed schedule, latency measured
                           from each request's scheduled send time; 0 (default) is closed loop.
                           Not with --pipeline above 1 or --reconnect 1
          --idle N         first open N connections that send nothing and stay open to the end; on loopback
                           they come from 127.0.0.2 and up (--idle-sources addresses, default ceil(N/20000)).
                           Gives up (exit 1) if not all open within --idle-timeout seconds; needs
                           N + connections + 64 descriptors (exit 2 if RLIMIT_NOFILE is lower)
          --idle-first-source F
                           the idle connections' first source address is 127.0.0.F (default 2): processes that
                           share one crowd each take their own addresses, and so their own ephemeral ports
          --connections 0  with --idle: only hold the idle connections, for one share of a crowd larger than one
                           process may open. "LoadGen: holding N idle" on stderr once all are open; they are
                           held until stdin ends or --duration passes, then the report says how many lasted
          --progress 1     a line on stderr every 5 s (the default when --duration is 20 or more)
          --timeline 1     the report gets "timeline": replies completed in each second from the first
                           request, warm-up included (how soon a fresh server is at full speed)
          --marks 1        "LoadGen: measuring" and "LoadGen: measured" on stderr as the measured window opens
                           and closes, for a caller that samples the server over exactly that window
        Socket completions run inline on the epoll thread unless DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS
        is set (0 restores the thread-pool hop). Exit 0 when every connection lasted, requests > 0 and every
        idle connection was still open; 1 otherwise; 2 for a usage or descriptor-limit error.
        """;

    private static readonly HashSet<string> Known =
    [
        "port", "host", "protocol", "connections", "pipeline", "duration", "warmup", "method", "params",
        "message-bytes", "reconnect", "rate", "idle", "idle-sources", "idle-first-source", "idle-timeout", "progress", "timeline",
        "marks",
    ];

    public string Host { get; init; } = "127.0.0.1";

    public int Port { get; init; }

    /// <summary><c>rpc</c>, <c>echo</c> or <c>resp</c>.</summary>
    public string Protocol { get; init; } = "rpc";

    public int Connections { get; init; } = 16;

    public int Pipeline { get; init; } = 1;

    public TimeSpan Duration { get; init; } = TimeSpan.FromSeconds(10);

    public TimeSpan Warmup { get; init; } = TimeSpan.FromSeconds(2);

    public string Method { get; init; } = "ping";

    public string Params { get; init; } = "\"x\"";

    public int MessageBytes { get; init; } = 64;

    public bool Reconnect { get; init; }

    /// <summary>Requests per second over all connections in open loop; 0 is closed loop.</summary>
    public double Rate { get; init; }

    public int Idle { get; init; }

    /// <summary>How many loopback source addresses the idle connections are spread over.</summary>
    public int IdleSources { get; init; }

    /// <summary>The last byte of the first loopback source address of the idle connections.</summary>
    public int IdleFirstSource { get; init; } = 2;

    /// <summary>Whether this run only holds idle connections (<c>--connections 0</c>): one share of a larger crowd.</summary>
    public bool HoldOnly => Connections == 0;

    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(120);

    public bool Progress { get; init; }

    /// <summary>Whether the report carries replies per second from the first request on.</summary>
    public bool Timeline { get; init; }

    /// <summary>Whether the measured window's edges are marked on stderr.</summary>
    public bool Marks { get; init; }

    public bool OpenLoop => Rate > 0;

    /// <summary>The options, or null with <paramref name="problem"/> saying why (null too when it is only a malformed command line).</summary>
    public static LoadOptions? Parse(string[] args, out string? problem)
    {
        problem = null;
        var values = new Dictionary<string, string>();
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal))
            {
                return null;
            }

            values[args[i][2..]] = args[i + 1];
        }

        if (args.Length % 2 != 0 || !values.ContainsKey("port"))
        {
            return null;
        }

        if (values.Keys.FirstOrDefault(key => !Known.Contains(key)) is { } unknown)
        {
            problem = $"unknown option --{unknown}";
            return null;
        }

        try
        {
            return Check(FromValues(values), out problem);
        }
        catch (FormatException)
        {
            problem = "a number option is not a number";
            return null;
        }
        catch (OverflowException)
        {
            problem = "a number option is out of range";
            return null;
        }
    }

    private static LoadOptions FromValues(Dictionary<string, string> values)
    {
        string Get(string key, string fallback) => values.GetValueOrDefault(key, fallback);
        int Int(string key, int fallback) => int.Parse(Get(key, fallback.ToString(CultureInfo.InvariantCulture)), CultureInfo.InvariantCulture);
        var duration = Int("duration", 10);
        var idle = Int("idle", 0);
        return new LoadOptions
        {
            Host = Get("host", "127.0.0.1"),
            Port = Int("port", 0),
            Protocol = Get("protocol", "rpc"),
            Connections = Int("connections", 16),
            Pipeline = Int("pipeline", 1),
            Duration = TimeSpan.FromSeconds(duration),
            Warmup = TimeSpan.FromSeconds(Int("warmup", 2)),
            Method = Get("method", "ping"),
            Params = Get("params", "\"x\""),
            MessageBytes = Int("message-bytes", 64),
            Reconnect = Int("reconnect", 0) == 1,
            Rate = double.Parse(Get("rate", "0"), NumberStyles.Float, CultureInfo.InvariantCulture),
            Idle = idle,
            IdleSources = Int("idle-sources", (int)Math.Max(1, (idle + 19_999L) / 20_000)),
            IdleFirstSource = Int("idle-first-source", 2),
            IdleTimeout = TimeSpan.FromSeconds(Int("idle-timeout", 120)),
            Progress = Int("progress", duration >= 20 ? 1 : 0) == 1,
            Timeline = Int("timeline", 0) == 1,
            Marks = Int("marks", 0) == 1,
        };
    }

    private static LoadOptions? Check(LoadOptions options, out string? problem)
    {
        problem = options switch
        {
            { Protocol: not ("rpc" or "echo" or "resp") } => $"unknown protocol '{options.Protocol}'",
            { Port: < 1 or > 65535 } => "--port must be 1-65535",
            { Connections: < 0 } or { Pipeline: < 1 } => "--connections must be 0 or more and --pipeline at least 1",
            { Connections: 0, Idle: < 1 } => "--connections 0 only holds --idle connections: give --idle",
            { Duration.TotalSeconds: < 1 } or { Warmup.TotalSeconds: < 0 } => "--duration must be at least 1 and --warmup not negative",
            { Protocol: "echo", MessageBytes: < 1 } => "--message-bytes must be at least 1",
            { Rate: < 0 } or { Rate: double.NaN or double.PositiveInfinity } => "--rate must be 0 (closed loop) or a positive number",
            { OpenLoop: true, Pipeline: > 1 } => "--rate (open loop) sends one request at a time on its schedule; it does not combine with --pipeline",
            { OpenLoop: true, Reconnect: true } => "--rate (open loop) does not combine with --reconnect 1",
            { Idle: < 0 } => "--idle must be 0 or more",
            { IdleFirstSource: < 1 or > 254 } => "--idle-first-source must be 1-254",
            _ when options.IdleSources < 1 || options.IdleFirstSource + options.IdleSources > 255 => "--idle-first-source plus --idle-sources must stay within 127.0.0.1 to 127.0.0.254",
            { IdleTimeout.TotalSeconds: < 1 } => "--idle-timeout must be at least 1",
            _ => null,
        };
        return problem is null ? options : null;
    }
}
