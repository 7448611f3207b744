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
internal abstract partial class ModelConnection : ConnectionContext, IDuplexPipe, IConnectionIdFeature, IConnectionTransportFeature,
    IConnectionEndPointFeature, IConnectionLifetimeFeature, IConnectionLifetimeNotificationFeature, IConnectionCompleteFeature,
    ICloseRequestWakeFeature, ITransportTrafficFeature
{
    private static long s_lastId;

    // The tokens are made when first asked for (among the extras): many connections end without anyone asking (a
    // handler whose requests are all quick never reads the closed token); a close request wakes this reader instead.
    private PipeReader? _wakeOnCloseRequest;
    private LazySignal _finished;

    // What runs once the pipeline has ended (IConnectionCompleteFeature): one callback in place (the gateway's
    // middleware registers one), more among the extras.
    private Func<object, Task>? _completed;
    private object? _completedState;

    // The pipeline that ConnectionDispatcher runs, while it runs.
    private Task? _served;
    private ConnectionDispatcher? _dispatcher;

    private int _signals; // the Signal bits, each set once
    private long _bytesReceived;
    private long _bytesSent;
    private long _lastActivityTick = Environment.TickCount64;

    private readonly PackedEndPoint _local;
    private readonly PackedEndPoint _remote;
    private Extras? _extras;

    protected ModelConnection(FileDescriptor socket)
    {
        Socket = socket;
        ConnectionId = $"{ModelConnectionIdPrefix}{Interlocked.Increment(ref s_lastId):X8}";
        _local = NativeSocket.LocalAddress(socket);
        _remote = NativeSocket.RemoteAddress(socket);
    }

    /// <summary>Distinguishes these ids from Kestrel's own, which share the registry.</summary>
    private const string ModelConnectionIdPrefix = "m";

    public FileDescriptor Socket { get; }

    /// <summary>Why the host aborted the connection, if it did.</summary>
    protected ConnectionAbortedException? AbortReason => Volatile.Read(ref _extras)?.AbortReason;

    public override string ConnectionId { get; set; }

    public override IDictionary<object, object?> Items
    {
        get => ExtrasNow.Items ??= new ConnectionItems();
        set => ExtrasNow.Items = value;
    }

    public override IDuplexPipe Transport
    {
        get => _extras?.Transport ?? this;
        set
        {
            var replacement = ReferenceEquals(value, this) ? null : value;
            if (replacement is not null || _extras is not null)
            {
                ExtrasNow.Transport = replacement; // setting this connection back needs no extras made for it
            }
        }
    }

    PipeReader IDuplexPipe.Input => ApplicationInput;

    PipeWriter IDuplexPipe.Output => ApplicationOutput;

    /// <summary>The application's side of the input, which the model fills.</summary>
    protected abstract PipeReader ApplicationInput { get; }

    /// <summary>The application's side of the output, which the model sends from.</summary>
    protected abstract PipeWriter ApplicationOutput { get; }

    /// <summary>Made when asked, from the address read at accept (an idle connection keeps no end point objects).</summary>
    public override EndPoint? LocalEndPoint
    {
        get => _extras is { EndPointsSet: true } extras ? extras.Local : _local.ToEndPoint();
        set => EndPointsSet().Local = value;
    }

    /// <summary>Made when asked, from the address read at accept.</summary>
    public override EndPoint? RemoteEndPoint
    {
        get => _extras is { EndPointsSet: true } extras ? extras.Remote : _remote.ToEndPoint();
        set => EndPointsSet().Remote = value;
    }

    public override CancellationToken ConnectionClosed
    {
        get => TokenOf(ref ExtrasNow.Closed, Signal.Closed);
        set => throw new NotSupportedException("the model owns the connection's closed token");
    }

    /// <summary>
    /// The graceful close request (drain, admin close) when <see cref="ConnectionDispatcher"/> runs this connection
    /// (Kestrel's own dispatch sets its own feature over this one).
    /// </summary>
    public CancellationToken ConnectionClosedRequested
    {
        get => TokenOf(ref ExtrasNow.CloseRequested, Signal.CloseRequested);
        set => throw new NotSupportedException("the model owns the connection's close-request token");
    }

    public void RequestClose()
    {
        if (TrySignal(Signal.CloseRequested))
        {
            CancelQuietly(Volatile.Read(ref _extras) is { } extras ? Volatile.Read(ref extras.CloseRequested) : null);
            Volatile.Read(ref _wakeOnCloseRequest)?.CancelPendingRead();
        }
    }

    bool ICloseRequestWakeFeature.IsCloseRequested => Signalled(Signal.CloseRequested);

    /// <summary>
    /// The handler's reader, woken by <see cref="RequestClose"/> without a token registration: set only when
    /// <see cref="ConnectionDispatcher"/> runs the connection (a close request through Kestrel's dispatch goes to
    /// Kestrel's feature, never here).
    /// </summary>
    void ICloseRequestWakeFeature.WakeOnCloseRequest(PipeReader input)
    {
        Volatile.Write(ref _wakeOnCloseRequest, input);
        if (Signalled(Signal.CloseRequested))
        {
            input.CancelPendingRead(); // requested already (the request may have read the field before it was set)
        }
    }

    /// <summary>
    /// Runs after the pipeline has ended and before the connection is disposed, when the dispatcher runs it. Called
    /// from the pipeline, which has ended before they run: no lock, as in Kestrel's own.
    /// </summary>
    public void OnCompleted(Func<object, Task> callback, object state)
    {
        ArgumentNullException.ThrowIfNull(callback);
        if (_completed is null)
        {
            (_completed, _completedState) = (callback, state);
        }
        else
        {
            (ExtrasNow.MoreCompleted ??= []).Add((callback, state));
        }
    }

    /// <summary>
    /// <paramref name="dispatcher"/> ends the connection once <paramref name="served"/> (its pipeline) completes:
    /// a continuation on that task (one delegate) rather than an <c>async</c> frame awaiting it.
    /// </summary>
    public void WhenServed(Task served, ConnectionDispatcher dispatcher)
    {
        (_served, _dispatcher) = (served, dispatcher);
        served.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(OnServed);
    }

    private void OnServed() => _ = _dispatcher!.EndAsync(this, _served!);

    /// <summary>
    /// The completion callbacks, latest first (as Kestrel runs them), each once; a callback that fails is reported
    /// to <paramref name="onError"/> with the connection's id, and the rest still run.
    /// </summary>
    public async Task FireCompletedAsync(Action<string, Exception> onError)
    {
        while (TakeCompleted() is ({ } callback, var state))
        {
            try
            {
                await callback(state!);
            }
            catch (Exception e)
            {
                onError(ConnectionId, e);
            }
        }
    }

    private (Func<object, Task>? Callback, object? State) TakeCompleted()
    {
        if (_extras?.MoreCompleted is { Count: > 0 } more)
        {
            var last = more[^1];
            more.RemoveAt(more.Count - 1);
            return last;
        }

        var first = (_completed, _completedState);
        (_completed, _completedState) = (null, null);
        return first;
    }

    public long BytesReceived => Volatile.Read(ref _bytesReceived);

    public long BytesSent => Volatile.Read(ref _bytesSent);

    public long LastActivityTick => Volatile.Read(ref _lastActivityTick);

    /// <summary>Completes once both directions have ended.</summary>
    protected Task Finished => _finished.WaitAsync();

    public override void Abort(ConnectionAbortedException abortReason)
    {
        ExtrasNow.AbortReason ??= abortReason;
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
        _extras?.Closed?.Dispose();
        _extras?.CloseRequested?.Dispose();
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
        CompleteInput(AbortReason ?? error);
        if (TryEndDirection(Signal.ReceiveEnded, out var bothEnded))
        {
            if (error is not null)
            {
                // A reset or an abort: nothing more can be sent either.
                StopSending();
            }

            SignalClosed();
            if (bothEnded)
            {
                BothEnded();
            }
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
        if (TryEndDirection(Signal.SendEnded, out var bothEnded) && bothEnded)
        {
            BothEnded();
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

    /// <summary>
    /// Ends one direction: true the first time; <paramref name="bothEnded"/> for the one call that ended the second
    /// direction (one signal for both, not one per direction: an idle connection's memory counts).
    /// </summary>
    private bool TryEndDirection(Signal direction, out bool bothEnded)
    {
        var before = Interlocked.Or(ref _signals, (int)direction);
        var first = (before & (int)direction) == 0;
        bothEnded = first && (before & (int)(Signal.SendEnded | Signal.ReceiveEnded) & ~(int)direction) != 0;
        return first;
    }

    private void BothEnded()
    {
        _finished.Set();
        SignalClosed();
    }

    /// <summary>
    /// Fires <see cref="ConnectionClosed"/> once, on the thread pool: its callbacks are the handler's code and must
    /// not run on a reactor or receive thread.
    /// </summary>
    private void SignalClosed()
    {
        // Nothing to cancel while nobody has asked for the token (one asking later gets it cancelled).
        if (TrySignal(Signal.Closed) && Volatile.Read(ref _extras) is { } extras && Volatile.Read(ref extras.Closed) is { } closed)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static s => CancelQuietly(s), closed, preferLocal: false);
        }
    }

    /// <summary>
    /// A token made on first use: cancelled already when its signal came first; otherwise the signal, from then on,
    /// finds the source (of two threads racing to publish one, the loser disposes its own, unused).
    /// </summary>
    private CancellationToken TokenOf(ref CancellationTokenSource? source, Signal signal)
    {
        if (Volatile.Read(ref source) is { } existing)
        {
            return existing.Token;
        }

        if (Signalled(signal))
        {
            return new CancellationToken(canceled: true);
        }

        var made = new CancellationTokenSource();
        if (Interlocked.CompareExchange(ref source, made, null) is { } other)
        {
            made.Dispose();
            return other.Token;
        }

        if (Signalled(signal))
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

    /// <summary>Sets <paramref name="signal"/>; true for the one caller that set it first.</summary>
    private bool TrySignal(Signal signal) => (Interlocked.Or(ref _signals, (int)signal) & (int)signal) == 0;

    private bool Signalled(Signal signal) => (Volatile.Read(ref _signals) & (int)signal) != 0;

    /// <summary>The extras, made on first use (an idle connection has none).</summary>
    private Extras ExtrasNow
    {
        get
        {
            if (Volatile.Read(ref _extras) is { } extras)
            {
                return extras;
            }

            Interlocked.CompareExchange(ref _extras, new Extras(), null);
            return _extras!;
        }
    }

    private Extras EndPointsSet()
    {
        var extras = ExtrasNow;
        if (!extras.EndPointsSet)
        {
            (extras.Local, extras.Remote, extras.EndPointsSet) = (_local.ToEndPoint(), _remote.ToEndPoint(), true);
        }

        return extras;
    }

    /// <summary>Once-only events of the connection, as bits of one field.</summary>
    [Flags]
    private enum Signal
    {
        CloseRequested = 1,
        SendEnded = 2,
        ReceiveEnded = 4,
        Closed = 8,
    }

    /// <summary>
    /// What few connections use, kept out of every connection's own fields: the tokens (made when a handler asks
    /// for one), a transport set over this one (TLS on Kestrel's dispatch), the abort's reason, items, replaced end
    /// points, more features and completion callbacks than the connection keeps in place.
    /// </summary>
    private sealed class Extras
    {
        // Fields, not properties: the tokens are published by compare-and-swap on them.
        public CancellationTokenSource? Closed;
        public CancellationTokenSource? CloseRequested;
        public volatile ConnectionAbortedException? AbortReason;

        public IDuplexPipe? Transport { get; set; }

        public IDictionary<object, object?>? Items { get; set; }

        /// <summary>Whether <see cref="Local"/> and <see cref="Remote"/> replace the end points read at accept.</summary>
        public bool EndPointsSet { get; set; }

        public EndPoint? Local { get; set; }

        public EndPoint? Remote { get; set; }

        public List<KeyValuePair<Type, object?>>? MoreFeatures { get; set; }

        public List<(Func<object, Task> Callback, object State)>? MoreCompleted { get; set; }
    }

    /// <summary>The pins of one gathering send's segments.</summary>
    [System.Runtime.CompilerServices.InlineArray(Length)]
    private struct PinnedSegments
    {
        public const int Length = 16;

        private MemoryHandle _first;
    }
}
