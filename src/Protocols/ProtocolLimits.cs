namespace Gateway.Protocols;

/// <summary>Limits every protocol handler honours; the host fills them from <c>Gateway:Limits</c>.</summary>
public sealed record ProtocolLimits
{
    public const int DefaultMaxFrameBytes = 1024 * 1024;

    /// <summary>Largest message body a peer may send (an RPC frame's body, an FTP command line).</summary>
    public int MaxFrameBytes { get; init; } = DefaultMaxFrameBytes;

    /// <summary>A connection that completes no message for this long is closed. Zero turns it off.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);
}
