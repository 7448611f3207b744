using System.Diagnostics;

namespace Gateway.Protocols;

/// <summary>Traces from protocol code: one Activity per RPC request. No listener, no cost (StartActivity returns null).</summary>
public static class ProtocolTelemetry
{
    public const string ActivitySourceName = "Gateway.Protocols";

    public static ActivitySource ActivitySource { get; } = new(ActivitySourceName);
}
