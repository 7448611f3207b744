namespace Gateway.Protocols.Framing;

/// <summary>
/// Closes a connection that completes no message for a while. A handler arms it just before it waits for
/// the next message and passes <see cref="Token"/> to that wait; partial input does not re-arm it, so a
/// client trickling one frame forever still times out. One timer per connection, re-armed per batch.
/// </summary>
public sealed class IdleTimeout : IDisposable
{
    private readonly CancellationTokenSource? _source;
    private readonly TimeSpan _timeout;

    /// <param name="timeout">Zero or <see cref="Timeout.InfiniteTimeSpan"/> turns it off.</param>
    public IdleTimeout(TimeSpan timeout)
    {
        _timeout = timeout;
        if (timeout > TimeSpan.Zero)
        {
            _source = new CancellationTokenSource();
        }
    }

    public CancellationToken Token => _source?.Token ?? CancellationToken.None;

    public bool HasExpired => _source?.IsCancellationRequested == true;

    public void Arm() => _source?.CancelAfter(_timeout);

    public void Dispose() => _source?.Dispose();
}
