using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Gateway.Protocols.Framing;

/// <summary>
/// The one read loop every protocol uses: reads from a <see cref="PipeReader"/> until a message reader
/// parses a message, and enforces the size limit so no protocol can forget it.
/// </summary>
/// <remarks>
/// <see cref="TryRead{T}"/> parses only what is already buffered, which lets a handler answer a whole batch
/// of pipelined messages and flush once when the batch runs out (Garnet's habit).
/// <para>
/// A minimum data rate (<see cref="MinimumBytesPerSecond"/>, Kestrel's idea for request bodies) applies to a
/// message in progress: from the moment part of one is seen, it must keep arriving at that average rate once
/// <see cref="MinimumRateGrace"/> has passed, or the read ends <see cref="ProtocolReadStatus.TooSlow"/>. A client
/// trickling a frame a byte a second is dropped within seconds instead of holding its buffer until the idle
/// timeout; a quiet connection between messages is the idle timeout's business, not this one's.
/// </para>
/// </remarks>
public sealed class ProtocolReader
{
    // A reader that reports Incomplete while holding more than the limit plus this much framing is broken
    // or fooled; the backstop stops it buffering without bound.
    private const int FramingAllowance = 1024;

    private readonly PipeReader _input;
    private SequencePosition _consumed;
    private bool _holdingMessage;

    // After an oversized message whose end has not arrived yet (a resynchronising reader): bytes are dropped
    // until it does.
    private bool _skippingOversized;

    // The message in progress: when its first bytes were seen (0: none in progress) and how many there are.
    private long _partialSince;
    private long _partialBytes;

    public ProtocolReader(PipeReader input, int maximumMessageSize)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maximumMessageSize);
        _input = input;
        MaximumMessageSize = maximumMessageSize;
    }

    public int MaximumMessageSize { get; }

    /// <summary>The slowest average a message in progress may arrive at, in bytes per second; 0 turns the check off.</summary>
    public double MinimumBytesPerSecond { get; init; }

    /// <summary>How long a message in progress may take before <see cref="MinimumBytesPerSecond"/> applies.</summary>
    public TimeSpan MinimumRateGrace { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Parses a message from bytes already received, without waiting. False: wait with <see cref="ReadAsync{T}"/>.</summary>
    public bool TryRead<TMessage>(IMessageReader<TMessage> reader, out ProtocolReadResult<TMessage> result)
    {
        ThrowIfHoldingMessage();
        if (_input.TryRead(out var read))
        {
            return TryParse(reader, read, out result);
        }

        result = default;
        return false;
    }

    /// <summary>
    /// Waits until a message, the end of input, a cancelled read, an oversized message or, with a minimum data
    /// rate set, a message in progress that arrives too slowly. Each wait for bytes suspends this method: its
    /// state machine comes from a pool rather than being allocated once per wait.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<ProtocolReadResult<TMessage>> ReadAsync<TMessage>(
        IMessageReader<TMessage> reader, CancellationToken cancellationToken = default)
    {
        ThrowIfHoldingMessage();
        while (true)
        {
            ReadResult read;
            if (RateDeadline() is not { } deadline)
            {
                read = await _input.ReadAsync(cancellationToken);
            }
            else
            {
                var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
                if (wait <= TimeSpan.Zero)
                {
                    // Bytes that came in at the last moment still count.
                    if (_input.TryRead(out read))
                    {
                        if (TryParse(reader, read, out var late))
                        {
                            return late;
                        }

                        if (RateDeadline() > deadline)
                        {
                            continue;
                        }
                    }

                    return new(ProtocolReadStatus.TooSlow, default!, _partialBytes);
                }

                // The wait ends when the message would fall below the rate if nothing more came.
                using var timer = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                timer.CancelAfter(wait);
                try
                {
                    read = await _input.ReadAsync(timer.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    continue; // deadline reached: checked at the top
                }
            }

            if (TryParse(reader, read, out var result))
            {
                return result;
            }
        }
    }

    /// <summary>
    /// The timestamp at which the message in progress falls below the minimum rate unless more of it comes
    /// (its start plus the grace, or plus the time its bytes so far are worth at the rate, whichever is later);
    /// null when none is in progress or no rate is set.
    /// </summary>
    private long? RateDeadline()
    {
        if (_partialSince == 0 || MinimumBytesPerSecond <= 0)
        {
            return null;
        }

        var seconds = Math.Max(MinimumRateGrace.TotalSeconds, _partialBytes / MinimumBytesPerSecond);
        return _partialSince + (long)(seconds * Stopwatch.Frequency);
    }

    /// <summary>
    /// Drops every byte received and not yet parsed, without waiting; returns how many. For a protocol that
    /// switches to TLS in the middle of a connection (FTP's AUTH TLS): plaintext that arrived before the server
    /// agreed was sent before the client could know TLS would start — an injection, never to be read.
    /// </summary>
    public long DiscardBuffered()
    {
        ThrowIfHoldingMessage();
        _partialSince = _partialBytes = 0;
        _skippingOversized = false;
        if (!_input.TryRead(out var read))
        {
            return 0;
        }

        _input.AdvanceTo(read.Buffer.End);
        return read.Buffer.Length;
    }

    /// <summary>Releases the last message's bytes back to the pipe.</summary>
    public void Advance()
    {
        if (!_holdingMessage)
        {
            throw new InvalidOperationException("No message to advance past.");
        }

        _holdingMessage = false;
        // Examined == consumed: the rest of the buffer is unexamined, so the next read returns it at once.
        _input.AdvanceTo(_consumed, _consumed);
    }

    private bool TryParse<TMessage>(IMessageReader<TMessage> reader, in ReadResult read, out ProtocolReadResult<TMessage> result)
    {
        var buffer = read.Buffer;
        if (read.IsCanceled)
        {
            _input.AdvanceTo(buffer.Start);
            result = new(ProtocolReadStatus.Canceled, default!, buffer.Length);
            return true;
        }

        if (_skippingOversized && reader is IResynchronizingMessageReader skipping)
        {
            if (skipping.EndOfMessage(buffer) is { } end)
            {
                _skippingOversized = false;
                buffer = buffer.Slice(end); // the messages after it parse as usual
            }
            else if (!read.IsCompleted)
            {
                _input.AdvanceTo(buffer.End);
                result = default;
                return false;
            }
            else
            {
                buffer = buffer.Slice(buffer.End); // the peer finished inside the oversized message
            }
        }

        var consumed = buffer.Start;
        var examined = buffer.End;
        if (!buffer.IsEmpty)
        {
            var status = reader.TryParseMessage(buffer, MaximumMessageSize, ref consumed, ref examined, out var message);
            if (status == MessageParseStatus.Complete)
            {
                _partialSince = 0;
                _consumed = consumed;
                _holdingMessage = true;
                result = new(ProtocolReadStatus.Message, message, 0);
                return true;
            }

            if (status == MessageParseStatus.TooLarge
                || buffer.Slice(consumed).Length > (long)MaximumMessageSize + FramingAllowance)
            {
                // A line has an end: drop the oversized one up to it (now, or as the rest arrives) and keep the
                // commands behind it. A frame has none: everything goes, and the handler closes.
                var oversized = buffer.Slice(consumed);
                var after = reader is IResynchronizingMessageReader resync ? resync.EndOfMessage(oversized) : null;
                _skippingOversized = after is null && reader is IResynchronizingMessageReader;
                _partialSince = 0;
                _input.AdvanceTo(after ?? buffer.End);
                result = new(ProtocolReadStatus.TooLarge, default!, buffer.Slice(consumed, after ?? buffer.End).Length);
                return true;
            }
        }

        if (read.IsCompleted)
        {
            var left = buffer.Slice(consumed).Length;
            _input.AdvanceTo(buffer.End);
            result = new(ProtocolReadStatus.Completed, default!, left);
            return true;
        }

        // Part of a message is here: its clock starts now (or keeps running) for the minimum data rate.
        _partialBytes = buffer.Slice(consumed).Length;
        if (_partialBytes == 0)
        {
            _partialSince = 0;
        }
        else if (_partialSince == 0)
        {
            _partialSince = Stopwatch.GetTimestamp();
        }

        _input.AdvanceTo(consumed, examined);
        result = default;
        return false;
    }

    private void ThrowIfHoldingMessage()
    {
        if (_holdingMessage)
        {
            throw new InvalidOperationException("Advance past the current message before reading the next.");
        }
    }
}
