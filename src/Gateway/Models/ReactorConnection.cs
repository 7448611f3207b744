using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Gateway.Models.Native;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>What every connection of one reactor listener shares.</summary>
internal sealed class ReactorOptions
{
    /// <summary>The input pauses the socket at this many unconsumed bytes (<see cref="SocketInput"/>).</summary>
    public required long InputPauseBytes { get; init; }

    /// <summary>Whether the application resumes on the reactor thread that read its bytes (Gateway:Execution inline).</summary>
    public required bool Inline { get; init; }

    /// <summary>
    /// How many bytes a connection's first read asks the input pipe for. A connection whose reads keep filling
    /// the buffer (a bulk transfer) asks for twice as much each time, up to <see cref="MaxReadBytes"/>, and for
    /// half as much again when reads come back small: 64 KiB reads took a 64 KiB echo stream from 3.4 to
    /// 4.2 Gb/s (one pinned core; 16 recv/send pairs per 64 KiB at 4 KiB), while a chatty connection keeps
    /// 4 KiB buffers.
    /// </summary>
    public int ReadBytes { get; init; } = 4096;

    /// <summary>The largest read a bulk connection grows to.</summary>
    public int MaxReadBytes { get; init; } = 64 * 1024;

    /// <summary>A connection accepted and closed at once, why, and the detail for the log.</summary>
    public required Action<IPEndPoint?, ModelRefusal, string> OnRefused { get; init; }

    /// <summary>accept(2) failed for want of descriptors or memory.</summary>
    public required Action<Exception> OnAcceptFailed { get; init; }

    /// <summary>A reactor step failed on one connection (which was closed for it).</summary>
    public required Action<Exception> OnFault { get; init; }
}

/// <summary>
/// A connection served by a <see cref="Reactor"/>. Its receive side runs on the reactor thread only, into a
/// <see cref="SocketInput"/>; its send side is a <see cref="SocketOutput"/>: the thread that flushes sends, and
/// the reactor watches for writability only when a non-blocking send hit EAGAIN. Edge-triggered reactors watch
/// reads and writes from the start and must read until the socket is drained, also when a paused input resumes
/// (no new edge comes for bytes already there).
/// </summary>
internal sealed class ReactorConnection : ModelConnection, ISocketSender, ISocketReceiver
{
    private readonly Reactor _reactor;
    private readonly SocketInput _input;
    private readonly SocketOutput _output;
    private LazySignal _closed;

    // Reactor-thread state.
    private bool _receivePaused;
    private int _readBytes;
    private bool _receiveDone;
    private bool _wantWrite;
    private bool _isClosed;

    public ReactorConnection(Reactor reactor, FileDescriptor socket, int token)
        : base(socket)
    {
        var options = reactor.Options;
        _input = new SocketInput(this, options.InputPauseBytes, options.Inline);
        _output = new SocketOutput(this);
        _reactor = reactor;
        _readBytes = options.ReadBytes;
        Token = token;
    }

    /// <summary>The reactor's slot for this connection.</summary>
    public int Token { get; }

    /// <summary>Whether the reactor's readiness set holds the descriptor now (reactor thread).</summary>
    public bool Watched { get; set; }

    /// <summary>The reactor says the socket is ready (reactor thread).</summary>
    public void OnReady(ReadyEvent ready)
    {
        if (ready.Writable && (_wantWrite || _reactor.EdgeTriggered))
        {
            _wantWrite = false;
            UpdateInterest();
            _output.OnWritable();
        }

        if (ready.Readable)
        {
            if (!_receivePaused && !_receiveDone)
            {
                Receive();
            }
            else if (ready.Hangup)
            {
                // Level-triggered APIs report a hang-up whatever we watch: stop watching until we read again.
                _reactor.Unwatch(this);
            }
        }
    }

    /// <summary>Work handed in from other threads (reactor thread).</summary>
    public void DoWork(ReactorWork work)
    {
        if (_isClosed)
        {
            return;
        }

        switch (work)
        {
            case ReactorWork.ResumeReceive:
                ResumeReceive();
                break;
            case ReactorWork.WatchWrite:
                _wantWrite = true;
                _reactor.Rewatch(this, CurrentInterest());
                UpdateInterest();
                break;
            case ReactorWork.EndReceive when !_receiveDone:
                EndReceive(null);
                break;
            case ReactorWork.Close:
                CloseOnReactor();
                break;
        }
    }

    /// <summary>Removes the descriptor from the reactor and closes it (reactor thread).</summary>
    public void CloseOnReactor()
    {
        if (_isClosed)
        {
            return;
        }

        _isClosed = true;
        if (!_receiveDone)
        {
            EndReceive(new ConnectionAbortedException("the listener stopped"));
        }

        _output.Stop(new ConnectionAbortedException("the listener stopped"));
        _reactor.Release(this);
        Socket.Dispose();
        _closed.Set();
    }

    protected override PipeReader ApplicationInput => _input;

    protected override PipeWriter ApplicationOutput => _output;

    protected override void CompleteInput(Exception? error) => _input.CompleteWriter(error);

    protected override void OnAborted() => _reactor.Post(this, ReactorWork.EndReceive);

    protected override void StopSending() => _output.Stop(AbortReason);

    protected override void OnSendEnded() => _reactor.Post(this, ReactorWork.EndReceive);

    protected override async ValueTask CloseAsync()
    {
        _reactor.Post(this, ReactorWork.Close);
        await _closed.WaitAsync();
    }

    NativeResult ISocketSender.Send(in ReadOnlySequence<byte> buffer) => SendNow(buffer, 0);

    void ISocketSender.Sent(long bytes) => CountSent(bytes);

    void ISocketSender.WatchWritable()
    {
        if (!_reactor.EdgeTriggered)
        {
            _reactor.Post(this, ReactorWork.WatchWrite);
        }
    }

    void ISocketSender.SendEnded(Exception? error, bool fin) => SendEnded(error, fin);

    void ISocketReceiver.ResumeReceive() => _reactor.Post(this, ReactorWork.ResumeReceive);

    /// <summary>An edge-triggered connection that stopped at its read budget reads on (reactor thread).</summary>
    public void ReceiveMore()
    {
        if (!_isClosed && !_receivePaused && !_receiveDone)
        {
            Receive();
        }
    }

    private void Receive()
    {
        var budget = _reactor.Options.MaxReadBytes;
        while (true)
        {
            var memory = _input.GetMemory(_readBytes);
            var result = Libc.Receive(Socket, memory.Span, 0);
            if (result.Ok && result.Value > 0)
            {
                _readBytes = result.Value >= _readBytes ? Math.Min(_readBytes * 2, _reactor.Options.MaxReadBytes)
                    : result.Value < _readBytes / 4 ? Math.Max(_readBytes / 2, _reactor.Options.ReadBytes) : _readBytes;
                CountReceived((int)result.Value);
                if (!_input.Publish((int)result.Value))
                {
                    // The application has not caught up: stop reading until it has (backpressure).
                    _receivePaused = true;
                    UpdateInterest();
                    return;
                }

                if (_input.ReaderCompleted)
                {
                    EndReceive(null); // the application stopped reading
                    return;
                }

                // Level-triggered: one read per readiness is fair to the others. Edge-triggered: read until the
                // socket is drained, end of stream included: a FIN queued behind the data brings no new edge; but
                // after as many bytes as one level-triggered read may take, the others' turn comes first and this
                // connection reads on after them (a client that pipelines a flood must not hold the thread).
                if (!_reactor.EdgeTriggered || (result.Value < memory.Length && IsDrained()))
                {
                    return;
                }

                budget -= (int)result.Value;
                if (budget <= 0)
                {
                    _reactor.ReceiveLater(this);
                    return;
                }

                continue;
            }

            _input.Publish(0); // nothing arrived: the memory goes back
            if (result.Ok)
            {
                EndReceive(null); // end of stream
                return;
            }

            if (result.WouldBlock)
            {
                return;
            }

            if (result.Error != Errno.Interrupted)
            {
                EndReceive(new ConnectionResetException(result.ToException("recv").Message));
                return;
            }
        }
    }

    /// <summary>
    /// After a short read, whether anything (bytes or end of stream) is still queued: a one-byte peek, so the
    /// usual answer (EAGAIN) costs no pipe memory. True when drained.
    /// </summary>
    private bool IsDrained()
    {
        Span<byte> probe = stackalloc byte[1];
        var peek = Libc.Receive(Socket, probe, Libc.MsgPeek);
        return peek.WouldBlock;
    }

    private void ResumeReceive()
    {
        if (!_receivePaused)
        {
            return;
        }

        _receivePaused = false;
        if (_receiveDone)
        {
            return;
        }

        if (_input.ReaderCompleted)
        {
            EndReceive(null);
            return;
        }

        _reactor.Rewatch(this, CurrentInterest());
        UpdateInterest();
        if (_reactor.EdgeTriggered)
        {
            Receive(); // bytes that arrived while paused brought their edge already
        }
    }

    private void EndReceive(Exception? error)
    {
        _receiveDone = true;
        UpdateInterest();
        ReceiveEnded(error);
    }

    private Interest CurrentInterest() =>
        (!_receivePaused && !_receiveDone ? Interest.Read : Interest.None) | (_wantWrite ? Interest.Write : Interest.None);

    private void UpdateInterest()
    {
        if (!_isClosed)
        {
            _reactor.ChangeInterest(this, CurrentInterest());
        }
    }
}
