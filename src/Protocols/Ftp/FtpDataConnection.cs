using System.Net.Sockets;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// One open data connection as a transfer uses it: send bytes, send a file, receive an upload, close. Keeps the
/// socket's fast paths (sendfile, a receive low-water mark) in one place, beside the control connection's
/// session that opened it.
/// </summary>
internal sealed class FtpDataConnection(Socket socket) : IAsyncDisposable
{
    /// <summary>ABOR: closes the socket under a transfer that cannot be cancelled otherwise (sendfile).</summary>
    public void Abort() => socket.Dispose();

    public async Task SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        while (!bytes.IsEmpty)
        {
            var sent = await socket.SendAsync(bytes, SocketFlags.None, cancellationToken);
            bytes = bytes[sent..];
        }
    }

    /// <summary>sendfile(2) of an open file from an offset to its end, through SendPacketsAsync: no copy through user space.</summary>
    public async Task SendFileAsync(FileStream file, long offset, CancellationToken cancellationToken)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var packets = new SocketAsyncEventArgs { SendPacketsElements = [new SendPacketsElement(file, offset, 0)] };
        packets.Completed += (_, e) => Complete(e, done);
        if (!socket.SendPacketsAsync(packets))
        {
            Complete(packets, done);
        }

        await done.Task.WaitAsync(cancellationToken);

        static void Complete(SocketAsyncEventArgs e, TaskCompletionSource done)
        {
            if (e.SocketError == SocketError.Success)
            {
                done.TrySetResult();
            }
            else
            {
                done.TrySetException(new SocketException((int)e.SocketError));
            }
        }
    }

    /// <summary>The upload's receiving side (see <see cref="FtpDataReceiver"/>).</summary>
    public FtpDataReceiver Receiver(int lowWaterBytes, TimeSpan timeout, CancellationToken aborted) =>
        new(socket, lowWaterBytes, timeout, aborted);

    /// <summary>The transfer is over: both directions shut down, so the client sees the end of the data.</summary>
    public Task CloseAsync()
    {
        socket.Shutdown(SocketShutdown.Both);
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
