using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.Protocols.Tests;

/// <summary>
/// A connection made of two in-memory pipes: the test writes what the client sends into <see cref="ClientOutput"/>
/// and reads replies from <see cref="ClientInput"/>. Counts the handler's flushes and lets a test request a
/// graceful close or end the connection, as the host would.
/// </summary>
internal sealed class InMemoryConnection : IConnectionLifetimeNotificationFeature, IDisposable
{
    private readonly CancellationTokenSource _closeRequested = new();
    private readonly CancellationTokenSource _closed = new();

    public InMemoryConnection(PipeOptions? serverOutput = null, PipeOptions? serverInput = null)
    {
        var toServer = new Pipe(serverInput ?? PipeOptions.Default);
        var toClient = new Pipe(serverOutput ?? PipeOptions.Default);
        ServerOutput = new FlushCountingPipeWriter(toClient.Writer);
        Context = new DefaultConnectionContext(
            "test-" + Guid.NewGuid().ToString("N")[..8],
            new DuplexPipe(toServer.Reader, ServerOutput),
            new DuplexPipe(toClient.Reader, toServer.Writer))
        {
            ConnectionClosed = _closed.Token,
        };
        Context.Features.Set<IConnectionLifetimeNotificationFeature>(this);
        ClientOutput = toServer.Writer;
        ClientInput = toClient.Reader;
    }

    public DefaultConnectionContext Context { get; }

    public FlushCountingPipeWriter ServerOutput { get; }

    /// <summary>What the client sends.</summary>
    public PipeWriter ClientOutput { get; }

    /// <summary>What the client receives.</summary>
    public PipeReader ClientInput { get; }

    public IDuplexPipe ClientPipe => new DuplexPipe(ClientInput, ClientOutput);

    public CancellationToken ConnectionClosedRequested
    {
        get => _closeRequested.Token;
        set => throw new NotSupportedException();
    }

    public void RequestClose() => _closeRequested.Cancel();

    /// <summary>What the transport does when the connection goes away under the handler.</summary>
    public void Close() => _closed.Cancel();

    public void Dispose()
    {
        _closeRequested.Dispose();
        _closed.Dispose();
    }

    /// <summary>Reads everything the server sends until it completes its output.</summary>
    public async Task<byte[]> ReadToEndAsync(CancellationToken cancellationToken)
    {
        using var all = new MemoryStream();
        while (true)
        {
            var read = await ClientInput.ReadAsync(cancellationToken);
            foreach (var segment in read.Buffer)
            {
                all.Write(segment.Span);
            }

            ClientInput.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
            {
                return all.ToArray();
            }
        }
    }

    /// <summary>Runs a handler the way Kestrel does: when it returns, the transport's pipes are completed.</summary>
    public async Task RunAsync(ConnectionHandler handler)
    {
        try
        {
            await handler.OnConnectedAsync(Context);
        }
        finally
        {
            await Context.Transport.Input.CompleteAsync();
            await Context.Transport.Output.CompleteAsync();
        }
    }
}

internal sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;

/// <summary>Delegates to a real pipe writer and counts flushes, to prove replies are batched.</summary>
internal sealed class FlushCountingPipeWriter(PipeWriter inner) : PipeWriter
{
    private int _flushes;

    public int Flushes => Volatile.Read(ref _flushes);

    public override void Advance(int bytes) => inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

    public override void CancelPendingFlush() => inner.CancelPendingFlush();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        Interlocked.Increment(ref _flushes);
        return inner.FlushAsync(cancellationToken);
    }
}
