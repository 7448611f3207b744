namespace Gateway.Protocols.Framing;

public enum ProtocolReadStatus
{
    /// <summary>A message is available; call <see cref="ProtocolReader.Advance"/> when done with it.</summary>
    Message,

    /// <summary>The peer finished sending. <see cref="ProtocolReadResult{T}.UnparsedBytes"/> is a torn final message, if any.</summary>
    Completed,

    /// <summary>A pending read was cancelled (<c>PipeReader.CancelPendingRead</c>), e.g. on a close request.</summary>
    Canceled,

    /// <summary>The message in progress is over the size limit; the stream cannot be re-synchronised.</summary>
    TooLarge,

    /// <summary>
    /// The message in progress arrives below the minimum data rate (<see cref="ProtocolReader.MinimumBytesPerSecond"/>);
    /// <see cref="ProtocolReadResult{T}.UnparsedBytes"/> is how much of it came. The connection should be closed.
    /// </summary>
    TooSlow,
}

public readonly struct ProtocolReadResult<TMessage>
{
    internal ProtocolReadResult(ProtocolReadStatus status, TMessage message, long unparsedBytes)
    {
        Status = status;
        Message = message;
        UnparsedBytes = unparsedBytes;
    }

    public ProtocolReadStatus Status { get; }

    /// <summary>Valid until <see cref="ProtocolReader.Advance"/>: it may point into the pipe's memory.</summary>
    public TMessage Message { get; }

    public long UnparsedBytes { get; }

    public bool IsMessage => Status == ProtocolReadStatus.Message;
}
