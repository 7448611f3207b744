using System.Buffers;
using System.IO.Pipelines;
using System.Threading.Tasks.Sources;

namespace Gateway.Models;

/// <summary>What a <see cref="SocketInput"/> needs from its connection.</summary>
internal interface ISocketReceiver
{
    /// <summary>
    /// The application has read enough of what waited (or stopped reading) for the paused receive to go on:
    /// <see cref="SocketInput.Publish"/> returned false before. Called from the reader's thread.
    /// </summary>
    void ResumeReceive();
}

/// <summary>
/// The application's side of a reactor connection's input: a <see cref="PipeReader"/> the reactor fills straight
/// from the socket, without a <see cref="Pipe"/> between (whose own state, segment pool and reader and writer
/// objects are about 400 bytes of every idle connection). Memory is rented from the array pool when bytes
/// arrive and returned as soon as the application has consumed them: a quiet connection holds no buffer and
/// no segment.
/// </summary>
/// <remarks>
/// <para>
/// The reactor thread is the only writer (<see cref="GetMemory"/>, then <see cref="Publish"/> after recv(2),
/// <see cref="CompleteWriter"/> at the end of the stream); the application reads from any one thread at a time,
/// as any <see cref="PipeReader"/>. Both hold the object's monitor for their bookkeeping (it is private to the
/// reactor connection) and never while the application's code runs.
/// </para>
/// <para>
/// A waiting read resumes inline, on the thread that published the bytes (the reactor: run to completion), or on
/// the thread pool, as <see cref="ExecutionMode"/> says. Past the pause threshold of unconsumed bytes the
/// reactor stops reading the socket (backpressure) until the application is below half of that.
/// </para>
/// </remarks>
internal sealed class SocketInput : PipeReader, IValueTaskSource<ReadResult>
{
    private readonly ISocketReceiver _receiver;
    private readonly long _pauseBytes;
    // A waiting read's completion carries only whether it was cancelled: its buffer is taken when the reader asks
    // for the result, as a Pipe's is (the core holds no copy of the last result between reads).
    private ManualResetValueTaskSourceCore<bool> _read;
    private CancellationTokenRegistration _readCancellation;

    // Published bytes run from (_head, _headStart) to (_tail, _tail.End); the reactor receives into _tail's free room.
    private BufferSegment? _head;
    private int _headStart;
    private BufferSegment? _tail;
    private long _published; // absolute: every byte ever published
    private long _examined; // absolute: how far the application has looked
    private long _consumed; // absolute

    private bool _writing; // the reactor holds memory of _tail (GetMemory without Publish yet)
    private bool _writerPaused;
    private bool _writerCompleted;
    private Exception? _writerError;
    private bool _readerCompleted;
    private bool _readPending;
    private bool _cancelNextRead;

    /// <param name="inline">Whether a waiting read resumes on the publishing thread.</param>
    public SocketInput(ISocketReceiver receiver, long pauseBytes, bool inline)
    {
        _receiver = receiver;
        _pauseBytes = pauseBytes;
        _read.RunContinuationsAsynchronously = !inline;
    }

    /// <summary>Half the pause threshold, as the pipe this replaces.</summary>
    private long ResumeBytes => _pauseBytes / 2;

    /// <summary>The application completed its reader: what arrives is of no use (the reactor ends the receive side).</summary>
    public bool ReaderCompleted => Volatile.Read(ref _readerCompleted); // set once, under the monitor

    // ---- the reactor's side ----

    /// <summary>Room for at least <paramref name="sizeHint"/> bytes at the end (reactor thread); <see cref="Publish"/> follows.</summary>
    public Memory<byte> GetMemory(int sizeHint)
    {
        lock (this)
        {
            _writing = true;
            if (_tail is not { } tail || tail.Free < sizeHint)
            {
                var segment = BufferSegment.Rent(sizeHint, _published);
                if (_tail is null || _tail.End == 0 && _tail == _head)
                {
                    _tail?.Return();
                    _head = segment;
                    _headStart = 0;
                }
                else
                {
                    _tail.Link(segment);
                }

                _tail = segment;
            }

            return _tail.FreeMemory;
        }
    }

    /// <summary>
    /// The reactor received <paramref name="bytes"/> (zero when recv(2) had none) into the memory it was given:
    /// they become readable, and a waiting read resumes. False when the application is that far behind that the
    /// reactor stops reading the socket until <see cref="ISocketReceiver.ResumeReceive"/>.
    /// </summary>
    public bool Publish(int bytes)
    {
        bool unpaused;
        lock (this)
        {
            _writing = false;
            if (_readerCompleted)
            {
                ReleaseConsumed();
                return true;
            }

            if (bytes > 0)
            {
                _tail!.Grow(bytes);
                _published += bytes;
            }
            else
            {
                ReleaseConsumed(); // nothing arrived: a segment rented for nothing goes back
            }

            if (!_readPending || _published == _examined)
            {
                return Unpaused();
            }

            TakePendingRead();
            // Judged now, not after the reader has run: the monitor is not taken again while the reader (on the
            // pool) takes it for its result. A pause the reader's consumption makes needless is undone by its
            // AdvanceTo, which resumes the receive.
            unpaused = Unpaused();
        }

        _read.SetResult(false); // may run the application's code, here (inline) or on the pool
        return unpaused;
    }

    /// <summary>The end of the stream (<paramref name="error"/> null) or a failed receive: a waiting read ends.</summary>
    public void CompleteWriter(Exception? error)
    {
        lock (this)
        {
            if (_writerCompleted)
            {
                return;
            }

            _writerCompleted = true;
            _writerError = error;
            _writing = false;
            ReleaseConsumed();
            if (!_readPending)
            {
                return;
            }

            _readPending = false;
            UnregisterLocked();
            if (error is not null)
            {
                ReleaseAll();
            }
        }

        if (error is not null)
        {
            _read.SetException(error);
        }
        else
        {
            _read.SetResult(false);
        }
    }

    // ---- the application's side ----

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        lock (this)
        {
            ThrowIfReadNotAllowed();
            if (TryReadLocked(out var ready))
            {
                return new ValueTask<ReadResult>(ready);
            }

            if (cancellationToken.IsCancellationRequested)
            {
                return ValueTask.FromCanceled<ReadResult>(cancellationToken);
            }

            _read.Reset();
            _readPending = true;
            if (cancellationToken.CanBeCanceled)
            {
                _readCancellation = cancellationToken.UnsafeRegister(static (state, token) => ((SocketInput)state!).CancelRead(token), this);
            }

            return new ValueTask<ReadResult>(this, _read.Version);
        }
    }

    public override bool TryRead(out ReadResult result)
    {
        lock (this)
        {
            ThrowIfReadNotAllowed();
            return TryReadLocked(out result);
        }
    }

    public override void AdvanceTo(SequencePosition consumed) => AdvanceTo(consumed, consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
        bool resume;
        lock (this)
        {
            if (_readerCompleted)
            {
                throw new InvalidOperationException("advancing is not allowed after the reader completed");
            }

            var consumedTo = Absolute(consumed, _consumed);
            var examinedTo = Absolute(examined, consumedTo);
            if (consumedTo < _consumed || consumedTo > _published || examinedTo < consumedTo || examinedTo > _published)
            {
                throw new InvalidOperationException("the position is outside the data that was read");
            }

            _examined = Math.Max(_examined, examinedTo);
            if (consumedTo > _consumed)
            {
                _consumed = consumedTo;
                ReleaseConsumed();
            }

            resume = _writerPaused && _published - _consumed < ResumeBytes;
            if (resume)
            {
                _writerPaused = false;
            }
        }

        if (resume)
        {
            _receiver.ResumeReceive();
        }
    }

    public override void CancelPendingRead()
    {
        lock (this)
        {
            if (!_readPending)
            {
                _cancelNextRead = true;
                return;
            }

            TakePendingRead();
        }

        _read.SetResult(true);
    }

    public override void Complete(Exception? exception = null)
    {
        bool resume;
        lock (this)
        {
            if (_readerCompleted)
            {
                return;
            }

            _readerCompleted = true;
            ReleaseAll();
            // A paused receive must learn that nobody reads any more (it ends the receive side then).
            resume = _writerPaused;
            _writerPaused = false;
        }

        if (resume)
        {
            _receiver.ResumeReceive();
        }
    }

    ValueTaskSourceStatus IValueTaskSource<ReadResult>.GetStatus(short token) => _read.GetStatus(token);

    void IValueTaskSource<ReadResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _read.OnCompleted(continuation, state, token, flags);

    ReadResult IValueTaskSource<ReadResult>.GetResult(short token)
    {
        var canceled = _read.GetResult(token);
        lock (this)
        {
            return ResultLocked(canceled);
        }
    }

    // ---- bookkeeping (monitor held) ----

    private void ThrowIfReadNotAllowed()
    {
        if (_readerCompleted)
        {
            throw new InvalidOperationException("reading is not allowed after the reader completed");
        }

        if (_readPending)
        {
            throw new InvalidOperationException("a read is already pending");
        }
    }

    private bool TryReadLocked(out ReadResult result)
    {
        if (_cancelNextRead)
        {
            _cancelNextRead = false;
            result = ResultLocked(canceled: true);
            return true;
        }

        if (_writerCompleted && _writerError is { } error)
        {
            ReleaseAll();
            throw error; // as a pipe's reader: a failed writer fails the read, whatever was left unread
        }

        if (_published > _examined || _writerCompleted)
        {
            result = ResultLocked(canceled: false);
            return true;
        }

        result = default;
        return false;
    }

    private void TakePendingRead()
    {
        _readPending = false;
        UnregisterLocked();
    }

    private ReadResult ResultLocked(bool canceled)
    {
        var buffer = _head is null || _published == _consumed
            ? ReadOnlySequence<byte>.Empty
            : new ReadOnlySequence<byte>(_head, _headStart, _tail!, _tail!.End);
        return new ReadResult(buffer, canceled, _writerCompleted);
    }

    /// <summary>Where a position of a buffer handed out lies in the stream; an empty buffer's positions are <paramref name="empty"/>.</summary>
    private static long Absolute(SequencePosition position, long empty) =>
        position.GetObject() is BufferSegment segment ? segment.RunningIndex + position.GetInteger() : empty;

    /// <summary>Whether the reactor may read on; records the pause when it may not.</summary>
    private bool Unpaused()
    {
        if (!_readerCompleted && _published - _consumed >= _pauseBytes)
        {
            _writerPaused = true;
            return false;
        }

        return true;
    }

    /// <summary>Returns the segments the application has consumed; the one the reactor receives into stays while it does.</summary>
    private void ReleaseConsumed()
    {
        while (_head is { } head)
        {
            var headEnd = head.RunningIndex + head.End;
            if (_consumed < headEnd)
            {
                _headStart = (int)(_consumed - head.RunningIndex);
                return;
            }

            if (head == _tail && _writing)
            {
                _headStart = head.End; // drained, but the reactor is receiving into it
                return;
            }

            _head = head.NextSegment;
            _headStart = 0;
            if (_head is null)
            {
                _tail = null;
            }

            head.Return();
        }
    }

    private void ReleaseAll()
    {
        _consumed = _examined = _published;
        ReleaseConsumed();
    }

    private void UnregisterLocked()
    {
        _readCancellation.Unregister(); // not Dispose: that waits for a running callback, which waits for this monitor
        _readCancellation = default;
    }

    private void CancelRead(CancellationToken token)
    {
        lock (this)
        {
            if (!_readPending)
            {
                return;
            }

            _readPending = false;
            _readCancellation = default; // disposing it from its own callback would wait for the callback
        }

        _read.SetException(new OperationCanceledException(token));
    }
}
