using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;
using Gateway.Models.Native;

namespace Gateway.Models;

/// <summary>What a <see cref="SocketOutput"/> needs from its connection.</summary>
internal interface ISocketSender
{
    /// <summary>One non-blocking send(2) (or a gathering sendmsg(2)) of the start of <paramref name="buffer"/>.</summary>
    NativeResult Send(in ReadOnlySequence<byte> buffer);

    /// <summary>The kernel took <paramref name="bytes"/> bytes.</summary>
    void Sent(long bytes);

    /// <summary>A send hit EAGAIN: call <see cref="SocketOutput.OnWritable"/> once the socket takes bytes again.</summary>
    void WatchWritable();

    /// <summary>
    /// The send direction is over, once: after the last byte (<paramref name="fin"/>: the connection sends FIN),
    /// because it failed (<paramref name="error"/>: the connection ends both ways), or because it was stopped.
    /// </summary>
    void SendEnded(Exception? error, bool fin);
}

/// <summary>
/// The application's side of a reactor connection's output: a <see cref="PipeWriter"/> whose flush sends on the
/// thread that flushed, so a reply goes to the socket without a second pipe, a send loop or a wake-up. Only what
/// the kernel did not take is kept, in buffers rented from the array pool and returned as soon as they are
/// sent: a quiet connection holds none. A send that meets a full socket buffer leaves the rest for
/// <see cref="OnWritable"/>, which the reactor calls on write readiness; the writer's flush waits (backpressure)
/// only while more than <see cref="PauseBytes"/> are unsent, and resumes on the thread pool, never on a reactor
/// thread, once fewer than <see cref="ResumeBytes"/> are.
/// </summary>
/// <remarks>
/// The writer side (GetMemory, Advance, FlushAsync, Complete) is used by one thread at a time, as any
/// <see cref="PipeWriter"/>; the reactor's <see cref="OnWritable"/> and the host's <see cref="Stop"/> may run
/// beside it. GetMemory and Advance take no lock (a reply is many small writes): they touch only the tail
/// segment, which nothing but the writer ever frees. Everything else holds the object's monitor (it is private to
/// the reactor connection: no lock object per connection); a send is
/// non-blocking and short, so it is made under that lock too: there is never more than one sender.
/// </remarks>
internal sealed class SocketOutput : PipeWriter
{
    /// <summary>As Kestrel's default output pause, and the blocking models' output pipe.</summary>
    public const int PauseBytes = 64 * 1024, ResumeBytes = 32 * 1024;

    private const int SegmentBytes = 4096;

    private readonly ISocketSender _sender;
    private FlushWait? _wait; // made the first time a flush must wait: most connections never do

    // Unsent bytes run from (_head, _headStart) to (_committed, _committedEnd); the writer appends after that, in _tail.
    private BufferSegment? _head;
    private int _headStart;
    private BufferSegment? _committed;
    private int _committedEnd;
    private BufferSegment? _tail;
    private long _unsent;
    private long _unflushed;

    private bool _waitingWritable;
    private bool _flushPending;
    private bool _cancelNextFlush;
    private bool _writerCompleted;
    private bool _ended; // the send direction is over: nothing more goes out
    private Exception? _failure; // why it ended, when it failed: the writer's next flush throws it

    public SocketOutput(ISocketSender sender) => _sender = sender;

    public override bool CanGetUnflushedBytes => true;

    public override long UnflushedBytes => _unflushed;

    public override Memory<byte> GetMemory(int sizeHint = 0) => Writable(sizeHint).FreeMemory;

    public override Span<byte> GetSpan(int sizeHint = 0) => Writable(sizeHint).FreeSpan;

    public override void Advance(int bytes)
    {
        if (_tail is not { } tail || (uint)bytes > (uint)tail.Free)
        {
            throw new ArgumentOutOfRangeException(nameof(bytes), "more bytes than the memory handed out");
        }

        tail.Grow(bytes);
        _unflushed += bytes;
    }

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
    {
        lock (this)
        {
            Commit();
            if (_ended)
            {
                return Ended();
            }

            if (!_waitingWritable)
            {
                SendLocked();
                if (_ended)
                {
                    return Ended();
                }
            }

            if (_unsent == 0)
            {
                ReturnAll(); // all sent: a quiet connection holds no buffer
            }

            if (_cancelNextFlush)
            {
                // As a pipe's: the flush returns cancelled, and what it committed goes out all the same.
                _cancelNextFlush = false;
                return ValueTask.FromResult(new FlushResult(isCanceled: true, isCompleted: false));
            }

            if (_unsent < PauseBytes)
            {
                return ValueTask.FromResult(default(FlushResult));
            }

            // Backpressure: the client takes less than the application writes.
            cancellationToken.ThrowIfCancellationRequested();
            var wait = _wait ??= new FlushWait();
            wait.Core.Reset();
            _flushPending = true;
            if (cancellationToken.CanBeCanceled)
            {
                wait.Cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((SocketOutput)state!).CancelFlush(token), this);
            }

            return new ValueTask<FlushResult>(wait, wait.Core.Version);
        }
    }

    public override void CancelPendingFlush()
    {
        lock (this)
        {
            if (_flushPending)
            {
                CompleteFlush(new FlushResult(isCanceled: true, isCompleted: false));
            }
            else
            {
                _cancelNextFlush = true;
            }
        }
    }

    /// <summary>
    /// The application is done writing: what it wrote goes out (now or on write readiness), then FIN. Completing
    /// with an exception fails the connection instead, as a failed send does.
    /// </summary>
    public override void Complete(Exception? exception = null)
    {
        lock (this)
        {
            if (_writerCompleted)
            {
                return;
            }

            _writerCompleted = true;
            if (exception is not null)
            {
                EndLocked(exception, fin: false);
                ReturnAll();
                return;
            }

            Commit();
            if (!_ended && !_waitingWritable)
            {
                SendLocked();
            }

            FinishIfDrained();
        }
    }

    /// <summary>The socket takes bytes again (reactor thread): send what waited, and let a held-up writer go on.</summary>
    public void OnWritable()
    {
        lock (this)
        {
            if (!_waitingWritable || _ended)
            {
                return;
            }

            _waitingWritable = false;
            SendLocked();
            if (_flushPending && (_ended || _unsent < ResumeBytes))
            {
                CompleteFlush(_ended ? new FlushResult(isCanceled: false, isCompleted: true) : default);
            }

            FinishIfDrained();
        }
    }

    /// <summary>
    /// Nothing more is sent (the host aborted the connection with <paramref name="reason"/>, or the peer reset it
    /// and <paramref name="reason"/> is null): unsent bytes are dropped and a waiting writer is released.
    /// </summary>
    public void Stop(Exception? reason)
    {
        lock (this)
        {
            if (!_ended)
            {
                _failure = reason;
                EndLocked(null, fin: false);
            }
        }
    }

    /// <summary>Sends until nothing committed is left or the socket is full (lock held).</summary>
    private void SendLocked()
    {
        while (_unsent > 0)
        {
            var result = _sender.Send(new ReadOnlySequence<byte>(_head!, _headStart, _committed!, _committedEnd));
            if (result.Ok)
            {
                Consume(result.Value);
                _sender.Sent(result.Value);
                continue;
            }

            if (result.Error == Errno.Interrupted)
            {
                continue;
            }

            if (result.WouldBlock)
            {
                _waitingWritable = true;
                _sender.WatchWritable();
                return;
            }

            EndLocked(ModelConnection.SendFailed(result.ToException("send")), fin: false);
            return;
        }
    }

    /// <summary>The bytes written since the last flush become sendable (lock held).</summary>
    private void Commit()
    {
        if (_unflushed == 0)
        {
            return;
        }

        _committed = _tail;
        _committedEnd = _tail!.End;
        _unsent += _unflushed;
        _unflushed = 0;
    }

    /// <summary>Drops <paramref name="bytes"/> sent bytes from the front, returning each buffer emptied (lock held).</summary>
    private void Consume(long bytes)
    {
        _unsent -= bytes;
        while (bytes > 0)
        {
            var available = _head!.End - _headStart;
            if (bytes < available)
            {
                _headStart += (int)bytes;
                return;
            }

            bytes -= available;
            _headStart = _head.End;
            if (_head != _tail)
            {
                RemoveHead(); // never the tail: the writer may be writing into it
            }
        }
    }

    /// <summary>The tail with room for <paramref name="sizeHint"/> bytes (the writer's thread).</summary>
    private BufferSegment Writable(int sizeHint)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(sizeHint);
        if (_writerCompleted)
        {
            throw new InvalidOperationException("writing is not allowed after the writer completed");
        }

        var wanted = Math.Max(sizeHint, 1);
        if (_tail is { } tail && tail.Free >= wanted)
        {
            return tail;
        }

        lock (this)
        {
            Append(Math.Max(wanted, SegmentBytes));
            return _tail!;
        }
    }

    private void Append(int bytes)
    {
        var segment = BufferSegment.Rent(bytes, _tail is null ? 0 : _tail.RunningIndex + _tail.End);
        if (_tail is null)
        {
            _head = segment;
            _headStart = 0;
        }
        else
        {
            _tail.Link(segment);
        }

        _tail = segment;
    }

    private void RemoveHead()
    {
        var head = _head!;
        _head = head.NextSegment;
        _headStart = 0;
        if (_committed == head)
        {
            _committed = null;
            _committedEnd = 0;
        }

        if (_head is null)
        {
            _tail = null;
        }

        head.Return();
    }

    /// <summary>Cleanly done: the writer completed and everything is sent (lock held).</summary>
    private void FinishIfDrained()
    {
        if (_writerCompleted && !_ended && _unsent == 0 && !_waitingWritable)
        {
            EndLocked(null, fin: true);
        }
        else if (_writerCompleted && _ended)
        {
            ReturnAll();
        }
    }

    /// <summary>Ends the send direction once (lock held); buffers the writer may still hold stay until it completes.</summary>
    private void EndLocked(Exception? error, bool fin)
    {
        if (_ended)
        {
            return;
        }

        _ended = true;
        _failure ??= error;
        _waitingWritable = false;
        if (_flushPending)
        {
            CompleteFlush(new FlushResult(isCanceled: false, isCompleted: true));
        }

        if (_writerCompleted)
        {
            ReturnAll();
        }

        _sender.SendEnded(error, fin);
    }

    /// <summary>A flush after the end: the failure, or "completed" when the peer is gone (lock held). What was written is dropped.</summary>
    private ValueTask<FlushResult> Ended()
    {
        ReturnAll();
        return _failure is { } failure
            ? ValueTask.FromException<FlushResult>(failure)
            : ValueTask.FromResult(new FlushResult(isCanceled: false, isCompleted: true));
    }

    private void ReturnAll()
    {
        while (_head is not null)
        {
            RemoveHead();
        }

        _unsent = 0;
        _unflushed = 0;
    }

    private void CompleteFlush(FlushResult result)
    {
        _flushPending = false;
        var wait = _wait!; // a flush is pending: it waits here
        wait.Cancellation.Unregister(); // not Dispose: that waits for a running callback, which waits for this lock
        wait.Cancellation = default;
        wait.Core.SetResult(result);
    }

    private void CancelFlush(CancellationToken token)
    {
        lock (this)
        {
            if (_flushPending)
            {
                _flushPending = false;
                _wait!.Cancellation = default; // disposing it from its own callback would wait for the callback
                _wait.Core.SetException(new OperationCanceledException(token));
            }
        }
    }

    /// <summary>A flush that waits for the socket to take bytes (backpressure): what the writer's await resumes from.</summary>
    private sealed class FlushWait : IValueTaskSource<FlushResult>
    {
        public ManualResetValueTaskSourceCore<FlushResult> Core = new() { RunContinuationsAsynchronously = true };

        public CancellationTokenRegistration Cancellation;

        public ValueTaskSourceStatus GetStatus(short token) => Core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            Core.OnCompleted(continuation, state, token, flags);

        public FlushResult GetResult(short token) => Core.GetResult(token);
    }
}
