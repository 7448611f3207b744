using System.Buffers;
using System.Diagnostics.CodeAnalysis;
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
    /// <summary>A reader and a writer.</summary>
    public const int ThreadsPerConnection = 2;

    private const int StackBytes = 256 * 1024;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ThreadBudget _threads;

    /// <param name="threads">Where <see cref="ThreadsPerConnection"/> threads were taken for this connection; each is given back as its thread ends.</param>
    public ThreadConnection(FileDescriptor socket, PipeOptions input, PipeOptions output, ThreadBudget threads)
        : this(socket, new Pipe(input), new Pipe(output), threads)
    {
    }

    private ThreadConnection(FileDescriptor socket, Pipe input, Pipe output, ThreadBudget threads)
        : base(socket)
    {
        Input = input;
        Output = output;
        _threads = threads;
    }

    /// <summary>The receive thread → application.</summary>
    private Pipe Input { get; }

    /// <summary>Application → the send thread.</summary>
    private Pipe Output { get; }

    /// <summary>Completes when the connection is over and its descriptor closed.</summary>
    public Task Closed => _closed.Task;

    /// <summary>
    /// Starts the connection's two threads. False when the system refuses one (a PID or thread limit: EAGAIN,
    /// which .NET reports as <see cref="OutOfMemoryException"/>): then the connection is over — any thread that
    /// did start has been told to end, both directions are ended — and the caller refuses it and disposes it.
    /// That one connection is lost; the exception never reaches the thread that accepts, which would end the
    /// process and every other connection with it.
    /// </summary>
    public bool TryStart([NotNullWhen(false)] out Exception? refusal)
    {
        var send = new Thread(SendOnThisThread, StackBytes) { IsBackground = true, Name = $"{ConnectionId} send" };
        var receive = new Thread(Receive, StackBytes) { IsBackground = true, Name = $"{ConnectionId} recv" };
        if (!TryStart(send, out refusal))
        {
            _threads.Return(ThreadsPerConnection);
            ReceiveEnded(new ConnectionAbortedException("no thread could be started for the connection", refusal));
            SendLoopAsync().GetAwaiter().GetResult(); // returns at once: the read of the output is cancelled
            return false;
        }

        if (!TryStart(receive, out refusal))
        {
            _threads.Return();
            ReceiveEnded(new ConnectionAbortedException("no thread could be started for the connection", refusal)); // also ends the send thread
            return false;
        }

        return true;
    }

    private static bool TryStart(Thread thread, [NotNullWhen(false)] out Exception? refusal)
    {
        try
        {
            thread.Start();
            refusal = null;
            return true;
        }
        catch (Exception e) when (e is OutOfMemoryException or ThreadStartException)
        {
            refusal = e;
            return false;
        }
    }

    private void SendOnThisThread()
    {
        try
        {
            SendLoopAsync().GetAwaiter().GetResult();
        }
        finally
        {
            _threads.Return();
        }
    }

    protected override PipeReader ApplicationInput => Input.Reader;

    protected override PipeWriter ApplicationOutput => Output.Writer;

    protected override void CompleteInput(Exception? error) => Input.Writer.Complete(error);

    protected override void OnSendEnded() => Shutdown(Libc.ShutRd); // wakes the receive thread if it still waits

    protected override void StopSending() => Output.Reader.CancelPendingRead(); // the send loop stops

    /// <summary>
    /// Drains the output pipe into the socket until the application completes it (then sends FIN) or the
    /// connection fails.
    /// </summary>
    private async Task SendLoopAsync()
    {
        Exception? error = null;
        var fin = false;
        try
        {
            while (true)
            {
                var result = await ReadOutputAsync();
                if (result.IsCanceled || AbortReason is not null)
                {
                    break;
                }

                var buffer = result.Buffer;
                while (!buffer.IsEmpty)
                {
                    var sent = Send(buffer);
                    buffer = buffer.Slice(sent);
                    CountSent(sent);
                }

                Output.Reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    fin = true;
                    break;
                }
            }
        }
        catch (NativeException e)
        {
            error = SendFailed(e);
        }
        catch (Exception e)
        {
            error = e;
        }
        finally
        {
            Output.Reader.Complete(AbortReason ?? error);
            SendEnded(error, fin);
        }
    }

    protected override ValueTask CloseAsync()
    {
        Socket.Dispose();
        _closed.TrySetResult();
        return ValueTask.CompletedTask;
    }

    /// <summary>The send thread blocks until there is output, so the whole send loop stays on that thread.</summary>
    private ValueTask<ReadResult> ReadOutputAsync()
    {
        var read = Output.Reader.ReadAsync();
        return ValueTask.FromResult(read.IsCompleted ? read.Result : read.AsTask().GetAwaiter().GetResult());
    }

    /// <summary>The send thread's blocking send: the socket is blocking, so it returns once the kernel took bytes.</summary>
    private long Send(ReadOnlySequence<byte> buffer)
    {
        while (true)
        {
            var result = SendNow(buffer, 0);
            if (result.Ok)
            {
                return result.Value;
            }

            if (result.Error != Errno.Interrupted)
            {
                throw result.ToException("send");
            }
        }
    }

    private void Receive()
    {
        try
        {
            ReceiveUntilEnd();
        }
        finally
        {
            _threads.Return();
        }
    }

    private void ReceiveUntilEnd()
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
