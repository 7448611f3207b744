using System.Text.Json;

namespace Gateway.Protocols.Rpc;

public enum RpcMethod
{
    Unknown,
    Ping,
    Echo,
    Time,
    Sum,
    Sha256,
    Work,
    Sleep,
    WhoAmI,
}

/// <summary>The method table: wire name → method, and the <c>"out"</c> word its reply carries.</summary>
internal static class RpcMethodTable
{
    private static readonly (byte[] Name, RpcMethod Method)[] Names =
    [
        ("ping"u8.ToArray(), RpcMethod.Ping),
        ("echo"u8.ToArray(), RpcMethod.Echo),
        ("time"u8.ToArray(), RpcMethod.Time),
        ("sum"u8.ToArray(), RpcMethod.Sum),
        ("sha256"u8.ToArray(), RpcMethod.Sha256),
        ("work"u8.ToArray(), RpcMethod.Work),
        ("sleep"u8.ToArray(), RpcMethod.Sleep),
        ("whoami"u8.ToArray(), RpcMethod.WhoAmI),
    ];

    // "pong" keeps the classic Python example's reply to "ping"; every other reply says its method's name.
    private static readonly JsonEncodedText[] OutWords =
    [
        JsonEncodedText.Encode("error"),
        JsonEncodedText.Encode("pong"),
        JsonEncodedText.Encode("echo"),
        JsonEncodedText.Encode("time"),
        JsonEncodedText.Encode("sum"),
        JsonEncodedText.Encode("sha256"),
        JsonEncodedText.Encode("work"),
        JsonEncodedText.Encode("sleep"),
        JsonEncodedText.Encode("whoami"),
    ];

    // Names for metrics and traces: the table's names, and "unknown" for anything that is not a method.
    private static readonly string[] MetricNames = ["unknown", "ping", "echo", "time", "sum", "sha256", "work", "sleep", "whoami"];

    public static JsonEncodedText ErrorWord => OutWords[(int)RpcMethod.Unknown];

    public static string MetricName(RpcMethod method) => MetricNames[(int)method];

    public static IEnumerable<string> MethodNames => Names.Select(n => System.Text.Encoding.UTF8.GetString(n.Name));

    public static JsonEncodedText OutWord(RpcMethod method) => OutWords[(int)method];

    /// <summary>The method named by the string token the reader is on (escapes honoured).</summary>
    public static RpcMethod Find(ref Utf8JsonReader json)
    {
        foreach (var (name, method) in Names)
        {
            if (json.ValueTextEquals(name))
            {
                return method;
            }
        }

        return RpcMethod.Unknown;
    }
}
