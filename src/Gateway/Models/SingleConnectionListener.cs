using System.Net;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// The transport of a per-connection worker (the seeds' fork-per-client server): one connection, accepted by
/// the supervisor and passed to this process, served with a blocking thread pair like the <c>threads</c>
/// model. Its first accept returns that connection and the next one ends the listener; when the connection
/// is over, <see cref="ModelEndPoint.OnServed"/> tells the worker it may exit.
/// </summary>
internal sealed class SingleConnectionListener : IConnectionListener
{
    private ThreadConnection? _connection;

    /// <param name="onRefused">The system refused the connection's threads: it is closed, and the worker's end told.</param>
    public SingleConnectionListener(ModelEndPoint endpoint, System.IO.Pipelines.PipeOptions input, System.IO.Pipelines.PipeOptions output,
        Action<IPEndPoint?, ModelRefusal, string> onRefused)
    {
        var socket = new FileDescriptor(endpoint.InheritedSocket ?? throw new ArgumentException("no connection was passed", nameof(endpoint)));
        EndPoint = endpoint;
        // This process's one connection: its budget is that connection's threads.
        var threads = new ThreadBudget(ThreadConnection.ThreadsPerConnection);
        threads.TryTake(ThreadConnection.ThreadsPerConnection);
        var connection = new ThreadConnection(socket, input, output, threads);
        _ = connection.Closed.ContinueWith(_ => endpoint.OnServed?.Invoke(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        if (!connection.TryStart(out var refusal))
        {
            onRefused(connection.RemoteEndPoint as IPEndPoint, ModelRefusal.NoThread, $"the system refused to start a thread ({refusal.GetType().Name})");
            connection.DisposeAsync().AsTask().GetAwaiter().GetResult(); // both directions ended already: closes the socket, then OnServed
            return;
        }

        _connection = connection;
    }

    public EndPoint EndPoint { get; }

    public ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default) =>
        ValueTask.FromResult<ConnectionContext?>(Interlocked.Exchange(ref _connection, null));

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

    public async ValueTask DisposeAsync()
    {
        // Never accepted (the host stopped first): nobody else will dispose it.
        if (Interlocked.Exchange(ref _connection, null) is { } unaccepted)
        {
            await unaccepted.DisposeAsync();
        }
    }
}
