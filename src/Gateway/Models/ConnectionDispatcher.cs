using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// Runs a listener's connection pipeline (the gateway middleware, TLS, the protocol's handler) for the
/// connections a reactor accepts, in place of Kestrel's per-connection dispatch: the same pipeline Kestrel
/// would run, built from the same <see cref="ListenOptions"/>, without Kestrel's per-connection objects (its
/// connection wrapper and its pending task, the connection manager's entry, metrics context and log scope:
/// about 900 bytes of an idle connection). The host's shutdown still reaches these connections: the drain asks
/// them to close through the registry, and what is left when the listener is disposed is aborted and waited for.
/// </summary>
internal sealed class ConnectionDispatcher(ConnectionDelegate pipeline, bool inline, Action<string, Exception> onUnhandled)
{
    /// <summary>How long the listener's disposal waits for aborted connections to finish.</summary>
    private static readonly TimeSpan AbortWait = TimeSpan.FromSeconds(5);

    private readonly TaskCompletionSource _allEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _live;
    private volatile bool _stopping;

    /// <summary>
    /// Starts the pipeline for a connection just accepted (on the accepting thread). Inline execution starts it
    /// right there, as the rest of the connection runs; otherwise on the thread pool, as Kestrel does.
    /// </summary>
    public void Start(ModelConnection connection)
    {
        Interlocked.Increment(ref _live);
        connection.DispatchedHere();
        if (inline)
        {
            Serve(connection);
        }
        else
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Dispatcher.Serve(state.Connection), (Dispatcher: this, Connection: connection), preferLocal: false);
        }
    }

    /// <summary>
    /// What follows the pipeline's end (<see cref="EndAsync"/>) waits as a continuation on its task that the
    /// connection holds, not as a suspended frame of an <c>async</c> method here: an idle connection's memory counts.
    /// </summary>
    private void Serve(ModelConnection connection)
    {
        Task served;
        try
        {
            served = pipeline(connection);
        }
        catch (Exception e)
        {
            served = Task.FromException(e);
        }

        if (served.IsCompleted)
        {
            _ = EndAsync(connection, served);
        }
        else
        {
            connection.WhenServed(served, this);
        }
    }

    /// <summary>
    /// After the accepting stopped and <paramref name="abortAll"/> aborted what is still open: waits (bounded)
    /// until every pipeline has ended and its connection is disposed.
    /// </summary>
    public async Task StopAsync(Action abortAll)
    {
        _stopping = true;
        if (Volatile.Read(ref _live) == 0)
        {
            return;
        }

        abortAll();
        await _allEnded.Task.WaitAsync(AbortWait).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>After the pipeline: its fault reported, the completion callbacks run, the connection disposed and counted out.</summary>
    internal async Task EndAsync(ModelConnection connection, Task served)
    {
        try
        {
            await served;
        }
        catch (Exception e)
        {
            onUnhandled(connection.ConnectionId, e);
        }

        await connection.FireCompletedAsync(onUnhandled);
        try
        {
            await connection.DisposeAsync();
        }
        catch (Exception e)
        {
            onUnhandled(connection.ConnectionId, e);
        }
        finally
        {
            if (Interlocked.Decrement(ref _live) == 0 && _stopping)
            {
                _allEnded.TrySetResult();
            }
        }
    }
}
