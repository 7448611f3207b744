using System.Buffers;
using System.IO.Pipelines;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// A connection served by blocking calls on threads of its own: one thread blocks in recv(2) and fills the
/// input pipe, another blocks on the output pipe and in send(2). A blocking socket cannot wait to read and to
/// write at once, and a handler may write while it reads (full duplex), so the classic
/// thread-per-connection server needs a reader and a writer thread here; blocking a pool thread in send()
/// instead would let clients that never read starve every other connection.
/// </summary>
internal sealed class ThreadConnection : ModelConnection
{
    private const int StackBytes = 256 * 1024;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public ThreadConnection(FileDescriptor socket, PipeOptions input, PipeOptions output)
        : base(socket, input, output)
    {
    }

    /// <summary>Completes when the connection is over and its descriptor closed.</summary>
    public Task Closed => _closed.Task;

    public void Start()
    {
        new Thread(Receive, StackBytes) { IsBackground = true, Name = $"{ConnectionId} recv" }.Start();
        new Thread(() => SendLoopAsync().GetAwaiter().GetResult(), StackBytes) { IsBackground = true, Name = $"{ConnectionId} send" }.Start();
    }

    protected override void OnSendEnded() => Shutdown(Libc.ShutRd); // wakes the receive thread if it still waits

    protected override ValueTask CloseAsync()
    {
        Socket.Dispose();
        _closed.TrySetResult();
        return ValueTask.CompletedTask;
    }

    /// <summary>The send thread blocks until there is output, so the whole send loop stays on that thread.</summary>
    protected override ValueTask<ReadResult> ReadOutputAsync()
    {
        var read = Output.Reader.ReadAsync();
        return ValueTask.FromResult(read.IsCompleted ? read.Result : read.AsTask().GetAwaiter().GetResult());
    }

    /// <summary>The send thread's blocking send: the socket is blocking, so it returns once the kernel took bytes.</summary>
    protected override ValueTask<long> SendAsync(ReadOnlySequence<byte> buffer)
    {
        while (true)
        {
            var result = SendNow(buffer, 0);
            if (result.Ok)
            {
                return ValueTask.FromResult(result.Value);
            }

            if (result.Error != Errno.Interrupted)
            {
                throw result.ToException("send");
            }
        }
    }

    private void Receive()
    {
        Exception? error = null;
        try
        {
            while (true)
            {
                var memory = Input.Writer.GetMemory(4096);
                var result = Libc.Receive(Socket, memory.Span, 0);
                if (result.Ok && result.Value > 0)
                {
                    Input.Writer.Advance((int)result.Value);
                    CountReceived((int)result.Value);
                    var flush = Input.Writer.FlushAsync();
                    // Backpressure the thread-per-connection way: this thread waits until the handler caught up.
                    var flushed = flush.IsCompleted ? flush.Result : flush.AsTask().GetAwaiter().GetResult();
                    if (flushed.IsCompleted)
                    {
                        break;
                    }
                }
                else if (result.Ok)
                {
                    break; // end of stream
                }
                else if (result.Error != Errno.Interrupted)
                {
                    error = new ConnectionResetException(result.ToException("recv").Message);
                    break;
                }
            }
        }
        catch (ObjectDisposedException)
        {
            // closed under us: the connection is over
        }

        ReceiveEnded(error);
    }
}
