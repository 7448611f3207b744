using System.IO.Pipelines;
using Gateway.Protocols.Framing;

namespace Gateway.Protocols;

/// <summary>Limits every protocol handler honours; the host fills them from <c>Gateway:Limits</c>.</summary>
public sealed record ProtocolLimits
{
    public const int DefaultMaxFrameBytes = 1024 * 1024;

    /// <summary>Largest message body a peer may send (an RPC frame's body, an FTP command line).</summary>
    public int MaxFrameBytes { get; init; } = DefaultMaxFrameBytes;

    /// <summary>A connection that completes no message for this long is closed. Zero turns it off.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// A message in progress (an RPC frame) must arrive at least this fast on average,
    /// in bytes per second, once <see cref="MinDataRateGrace"/> has passed; a slower peer is closed. Zero turns it
    /// off. Kestrel's default for request bodies: 240 bytes/s after 5 s.
    /// </summary>
    public double MinDataRate { get; init; } = 240;

    public TimeSpan MinDataRateGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A reader of messages up to <paramref name="maximumMessageSize"/> that enforces the minimum data rate.</summary>
    public ProtocolReader Reader(PipeReader input, int maximumMessageSize) =>
        new(input, maximumMessageSize) { MinimumBytesPerSecond = MinDataRate, MinimumRateGrace = MinDataRateGrace };
}
