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

    public SingleConnectionListener(ModelEndPoint endpoint, System.IO.Pipelines.PipeOptions input, System.IO.Pipelines.PipeOptions output)
    {
        var socket = new FileDescriptor(endpoint.InheritedSocket ?? throw new ArgumentException("no connection was passed", nameof(endpoint)));
        EndPoint = endpoint;
        var connection = new ThreadConnection(socket, input, output);
        connection.Start();
        _ = connection.Closed.ContinueWith(_ => endpoint.OnServed?.Invoke(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
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
