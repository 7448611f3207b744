using System.Buffers;
using System.IO.Pipelines;

namespace Gateway.Protocols.Framing;

/// <summary>
/// The one read loop every protocol uses: reads from a <see cref="PipeReader"/> until a message reader
/// parses a message, and enforces the size limit so no protocol can forget it.
/// </summary>
/// <remarks>
/// <see cref="TryRead{T}"/> parses only what is already buffered, which lets a handler answer a whole batch
/// of pipelined messages and flush once when the batch runs out (Garnet's habit).
/// </remarks>
public sealed class ProtocolReader
{
    // A reader that reports Incomplete while holding more than the limit plus this much framing is broken
    // or fooled; the backstop stops it buffering without bound.
    private const int FramingAllowance = 1024;

    private readonly PipeReader _input;
    private SequencePosition _consumed;
    private bool _holdingMessage;

    public ProtocolReader(PipeReader input, int maximumMessageSize)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maximumMessageSize);
        _input = input;
        MaximumMessageSize = maximumMessageSize;
    }

    public int MaximumMessageSize { get; }

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

    /// <summary>Waits until a message, the end of input, a cancelled read or an oversized message.</summary>
    public async ValueTask<ProtocolReadResult<TMessage>> ReadAsync<TMessage>(
        IMessageReader<TMessage> reader, CancellationToken cancellationToken = default)
    {
        ThrowIfHoldingMessage();
        while (true)
        {
            var read = await _input.ReadAsync(cancellationToken);
            if (TryParse(reader, read, out var result))
            {
                return result;
            }
        }
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

        var consumed = buffer.Start;
        var examined = buffer.End;
        if (!buffer.IsEmpty)
        {
            var status = reader.TryParseMessage(buffer, MaximumMessageSize, ref consumed, ref examined, out var message);
            if (status == MessageParseStatus.Complete)
            {
                _consumed = consumed;
                _holdingMessage = true;
                result = new(ProtocolReadStatus.Message, message, 0);
                return true;
            }

            if (status == MessageParseStatus.TooLarge
                || buffer.Slice(consumed).Length > (long)MaximumMessageSize + FramingAllowance)
            {
                _input.AdvanceTo(buffer.End);
                result = new(ProtocolReadStatus.TooLarge, default!, buffer.Length);
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
