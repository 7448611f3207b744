using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Gateway.Connections;
using Gateway.Models.Native;
using Gateway.Protocols;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Models;

/// <summary>
/// A connection of an in-process model as Kestrel sees it: a socket descriptor behind a duplex pipe, which is this
/// object itself. The model supplies the application's reader, which it fills from the socket (however it learns
/// that bytes arrived), and its writer, whose bytes it sends. The connection is over when both directions are: then the
/// model may close the descriptor.
/// </summary>
/// <remarks>
/// <see cref="ConnectionClosed"/> fires sooner, as Kestrel's socket transport raises it: when the receive side
/// ends (the peer's FIN or reset), a send fails, or the host aborts. A handler busy with a long request learns
/// from it that its client has gone, on every model alike.
/// </remarks>
internal abstract class ModelConnection : ConnectionContext, IDuplexPipe, IConnectionIdFeature, IConnectionTransportFeature,
    IConnectionEndPointFeature, IConnectionLifetimeFeature, IConnectionLifetimeNotificationFeature, ICloseRequestWakeFeature, ITransportTrafficFeature
{
    private static long s_lastId;

    /// <summary>
    /// The features this object is. The close request is answered here when <see cref="ConnectionDispatcher"/> runs
    /// the connection; Kestrel's dispatch (the blocking models) sets its own over it.
    /// </summary>
    private static readonly Type[] OwnFeatures =
    [
        typeof(IConnectionIdFeature), typeof(IConnectionTransportFeature), typeof(IConnectionEndPointFeature),
        typeof(IConnectionLifetimeFeature), typeof(IConnectionLifetimeNotificationFeature), typeof(ITransportTrafficFeature),
    ];

    // Made when first asked for: many connections end without anyone asking (a handler whose requests are all
    // quick never reads the closed token).
    private CancellationTokenSource? _closed;
    private CancellationTokenSource? _closeRequested;
    private int _closeRequestedSignalled;
    private PipeReader? _wakeOnCloseRequest;
    private LazySignal _finished;

    private readonly CompactFeatureCollection _features;
    private IDictionary<object, object?>? _items;
    private volatile ConnectionAbortedException? _abortReason;
    private int _sendEnded;
    private int _receiveEnded;
    private int _directionsEnded;
    private int _closedSignalled;
    private long _bytesReceived;
    private long _bytesSent;
    private long _lastActivityTick = Environment.TickCount64;

    private IDuplexPipe? _transport; // what the middleware put in place of this one, if anything

    protected ModelConnection(FileDescriptor socket)
    {
        Socket = socket;
        ConnectionId = $"{ModelConnectionIdPrefix}{Interlocked.Increment(ref s_lastId):X8}";
        LocalEndPoint = NativeSocket.LocalEndPoint(socket);
        RemoteEndPoint = NativeSocket.RemoteEndPoint(socket);
        _features = new CompactFeatureCollection(this, OwnFeatures);
    }

    /// <summary>Distinguishes these ids from Kestrel's own, which share the registry.</summary>
    private const string ModelConnectionIdPrefix = "m";

    public FileDescriptor Socket { get; }

    /// <summary>Why the host aborted the connection, if it did.</summary>
    protected ConnectionAbortedException? AbortReason => _abortReason;

    public override string ConnectionId { get; set; }

    public override IFeatureCollection Features => _features;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    public override IDuplexPipe Transport
    {
        get => _transport ?? this;
        set => _transport = ReferenceEquals(value, this) ? null : value;
    }

    PipeReader IDuplexPipe.Input => ApplicationInput;

    PipeWriter IDuplexPipe.Output => ApplicationOutput;

    /// <summary>The application's side of the input, which the model fills.</summary>
    protected abstract PipeReader ApplicationInput { get; }

    /// <summary>The application's side of the output, which the model sends from.</summary>
    protected abstract PipeWriter ApplicationOutput { get; }

    public override EndPoint? LocalEndPoint { get; set; }

    public override EndPoint? RemoteEndPoint { get; set; }

    public override CancellationToken ConnectionClosed
    {
        get => TokenOf(ref _closed, ref _closedSignalled);
        set => throw new NotSupportedException("the model owns the connection's closed token");
    }

    /// <summary>
    /// The graceful close request (drain, admin close) when <see cref="ConnectionDispatcher"/> runs this connection
    /// (Kestrel's own dispatch sets its own feature over this one).
    /// </summary>
    public CancellationToken ConnectionClosedRequested
    {
        get => TokenOf(ref _closeRequested, ref _closeRequestedSignalled);
        set => throw new NotSupportedException("the model owns the connection's close-request token");
    }

    public void RequestClose()
    {
        if (Interlocked.Exchange(ref _closeRequestedSignalled, 1) == 0)
        {
            CancelQuietly(Volatile.Read(ref _closeRequested));
            Volatile.Read(ref _wakeOnCloseRequest)?.CancelPendingRead();
        }
    }

    bool ICloseRequestWakeFeature.IsCloseRequested => Volatile.Read(ref _closeRequestedSignalled) != 0;

    /// <summary>
    /// The handler's reader, woken by <see cref="RequestClose"/> without a token registration: set only when
    /// <see cref="ConnectionDispatcher"/> runs the connection (a close request through Kestrel's dispatch goes to
    /// Kestrel's feature, never here).
    /// </summary>
    void ICloseRequestWakeFeature.WakeOnCloseRequest(PipeReader input)
    {
        Volatile.Write(ref _wakeOnCloseRequest, input);
        if (Volatile.Read(ref _closeRequestedSignalled) != 0)
        {
            input.CancelPendingRead(); // requested already (the request may have read the field before it was set)
        }
    }

    void ICloseRequestWakeFeature.StopWaking(PipeReader input) => Interlocked.CompareExchange(ref _wakeOnCloseRequest, null, input);

    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    public long BytesSent => Volatile.Read(ref _bytesSent);

    public long LastActivityTick => Volatile.Read(ref _lastActivityTick);

    /// <summary>Completes once both directions have ended.</summary>
    protected Task Finished => _finished.WaitAsync();

    public override void Abort(ConnectionAbortedException abortReason)
    {
        _abortReason ??= abortReason;
        StopSending();
        Shutdown(Libc.ShutRdWr); // the receive side sees the end
        OnAborted();
        SignalClosed(); // also when the receive side is held back by a full input pipe and sees nothing yet
    }

    /// <summary>Kestrel or the dispatcher disposes the connection once its handler returned: let the output drain, then close.</summary>
    public override async ValueTask DisposeAsync()
    {
        ApplicationInput.Complete();
        ApplicationOutput.Complete();
        await Finished;
        await CloseAsync();
        _closed?.Dispose();
        _closeRequested?.Dispose();
        await base.DisposeAsync();
    }

    /// <summary>
    /// Nothing more is sent (an abort, or the peer's reset): the model drops unsent output, releases a writer
    /// waiting for room and ends its send direction with <see cref="SendEnded"/>.
    /// </summary>
    protected abstract void StopSending();

    /// <summary>The model wakes whatever waits for this connection's socket (the abort already shut it down).</summary>
    protected virtual void OnAborted()
    {
    }

    /// <summary>
    /// Nothing more will be sent: the model ends the receive side too (the application is done with the
    /// connection, or the connection failed), as Kestrel's socket transport shuts both directions down.
    /// </summary>
    protected virtual void OnSendEnded()
    {
    }

    /// <summary>The receive direction is over: the application's reader sees the end, or <paramref name="error"/>.</summary>
    protected abstract void CompleteInput(Exception? error);

    /// <summary>The model removes the descriptor from whatever watches it and closes it.</summary>
    protected abstract ValueTask CloseAsync();

    /// <summary>The model's receive path, after it advanced the input pipe by <paramref name="bytes"/>.</summary>
    protected void CountReceived(int bytes)
    {
        Volatile.Write(ref _bytesReceived, _bytesReceived + bytes); // one writer: the receive path
        Volatile.Write(ref _lastActivityTick, Environment.TickCount64);
    }

    /// <summary>The receive direction ended: end of stream, reset, or abort.</summary>
    protected void ReceiveEnded(Exception? error)
    {
        CompleteInput(_abortReason ?? error);
        if (Interlocked.Exchange(ref _receiveEnded, 1) == 0)
        {
            if (error is not null)
            {
                // A reset or an abort: nothing more can be sent either.
                StopSending();
            }

            SignalClosed();
            DirectionEnded();
        }
    }

    /// <summary>
    /// The send direction is over, once. <paramref name="fin"/>: after the last byte (a clean FIN follows);
    /// <paramref name="error"/>: a failed send, which ends the receive side too; neither: stopped by an abort or
    /// the peer's reset, which have shut the socket down already.
    /// </summary>
    protected void SendEnded(Exception? error, bool fin)
    {
        if (fin)
        {
            Shutdown(Libc.ShutWr);
        }

        if (error is not null)
        {
            Shutdown(Libc.ShutRdWr);
            SignalClosed();
        }

        OnSendEnded();
        if (Interlocked.Exchange(ref _sendEnded, 1) == 0)
        {
            DirectionEnded();
        }
    }

    /// <summary>
    /// What a failed send(2) means to the application: the peer gone (a reset, a broken pipe, a dead link) is
    /// Kestrel's <see cref="ConnectionResetException"/>; anything else stays as it is.
    /// </summary>
    internal static Exception SendFailed(NativeException e) =>
        e.Error is Errno.BrokenPipe or Errno.ConnectionReset or Errno.NotConnected or Errno.TimedOut ? new ConnectionResetException(e.Message, e) : e;

    /// <summary>The model's send path: the kernel took <paramref name="bytes"/> bytes.</summary>
    protected void CountSent(long bytes)
    {
        Interlocked.Add(ref _bytesSent, bytes); // a reactor connection's sender is whichever thread flushed
        Volatile.Write(ref _lastActivityTick, Environment.TickCount64);
    }

    /// <summary>One send of the buffer's first segment, or a gathering send of its first 16.</summary>
    protected NativeResult SendNow(in ReadOnlySequence<byte> buffer, int flags)
    {
        if (buffer.IsSingleSegment)
        {
            return Libc.Send(Socket, buffer.FirstSpan, flags);
        }

        return SendGathered(buffer, flags);
    }

    private unsafe NativeResult SendGathered(in ReadOnlySequence<byte> buffer, int flags)
    {
        const int MaxSegments = PinnedSegments.Length;
        var vectors = stackalloc Libc.IoVector[MaxSegments];
        var handles = default(PinnedSegments); // on the stack: no allocation per send
        var count = 0;
        try
        {
            foreach (var segment in buffer)
            {
                if (count == MaxSegments)
                {
                    break;
                }

                if (segment.IsEmpty)
                {
                    continue;
                }

                handles[count] = segment.Pin();
                vectors[count] = new Libc.IoVector { Base = handles[count].Pointer, Length = (nuint)segment.Length };
                count++;
            }

            return Libc.SendVector(Socket, vectors, count, flags);
        }
        finally
        {
            for (var i = 0; i < count; i++)
            {
                handles[i].Dispose();
            }
        }
    }

    /// <summary>shutdown(2) of one or both directions; nothing when the descriptor is closed already.</summary>
    protected void Shutdown(int how)
    {
        try
        {
            _ = Libc.Shutdown(Socket, how);
        }
        catch (ObjectDisposedException)
        {
            // closed already
        }
    }

    /// <summary>Called once per direction (one task, not one per direction: an idle connection's memory counts).</summary>
    private void DirectionEnded()
    {
        if (Interlocked.Increment(ref _directionsEnded) == 2)
        {
            _finished.Set();
            SignalClosed();
        }
    }

    /// <summary>
    /// Fires <see cref="ConnectionClosed"/> once, on the thread pool: its callbacks are the handler's code and must
    /// not run on a reactor or receive thread.
    /// </summary>
    private void SignalClosed()
    {
        // Nothing to cancel while nobody has asked for the token (one asking later gets it cancelled).
        if (Interlocked.Exchange(ref _closedSignalled, 1) == 0 && Volatile.Read(ref _closed) is { } closed)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static s => CancelQuietly(s), closed, preferLocal: false);
        }
    }

    /// <summary>
    /// A token made on first use: cancelled already when its signal came first; otherwise the signal, from then on,
    /// finds the source (of two threads racing to publish one, the loser disposes its own, unused).
    /// </summary>
    private static CancellationToken TokenOf(ref CancellationTokenSource? source, ref int signalled)
    {
        if (Volatile.Read(ref source) is { } existing)
        {
            return existing.Token;
        }

        if (Volatile.Read(ref signalled) != 0)
        {
            return new CancellationToken(canceled: true);
        }

        var made = new CancellationTokenSource();
        if (Interlocked.CompareExchange(ref source, made, null) is { } other)
        {
            made.Dispose();
            return other.Token;
        }

        if (Volatile.Read(ref signalled) != 0)
        {
            // The signal came while this was being made and may have missed it. Cancelled from the pool, as the
            // signal's own cancel is: a caller on a reactor thread must not run others' callbacks.
            ThreadPool.UnsafeQueueUserWorkItem(static s => CancelQuietly(s), made, preferLocal: false);
        }

        return made.Token;
    }

    private static void CancelQuietly(CancellationTokenSource? source)
    {
        try
        {
            source?.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // disposed already: nobody is listening
        }
    }

    /// <summary>The pins of one gathering send's segments.</summary>
    [System.Runtime.CompilerServices.InlineArray(Length)]
    private struct PinnedSegments
    {
        public const int Length = 16;

        private MemoryHandle _first;
    }
}
