using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Gateway.Connections;

/// <summary>
/// Wraps a connection's transport once, in the connection middleware, to count bytes for its record — so no
/// protocol counts bytes itself. Reads count what arrived since the last read; writes count what is advanced.
/// </summary>
internal sealed class CountingDuplexPipe(IDuplexPipe inner, ConnectionRecord record) : IDuplexPipe
{
    public PipeReader Input { get; } = new CountingPipeReader(inner.Input, record);

    public PipeWriter Output { get; } = new CountingPipeWriter(inner.Output, record);

    private sealed class CountingPipeReader(PipeReader inner, ConnectionRecord record) : PipeReader
    {
        private ReadOnlySequence<byte> _buffer;
        private long _leftUnconsumed;

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            var pending = inner.ReadAsync(cancellationToken);
            return pending.IsCompletedSuccessfully ? new(Count(pending.Result)) : AwaitAsync(pending);
        }

        [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
        private async ValueTask<ReadResult> AwaitAsync(ValueTask<ReadResult> pending) => Count(await pending);

        public override bool TryRead(out ReadResult result)
        {
            if (!inner.TryRead(out result))
            {
                return false;
            }

            result = Count(result);
            return true;
        }

        public override void AdvanceTo(SequencePosition consumed)
        {
            _leftUnconsumed = _buffer.Slice(consumed).Length;
            inner.AdvanceTo(consumed);
        }

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            _leftUnconsumed = _buffer.Slice(consumed).Length;
            inner.AdvanceTo(consumed, examined);
        }

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);

        // The buffer holds what was left unconsumed last time plus what arrived since.
        private ReadResult Count(ReadResult result)
        {
            _buffer = result.Buffer;
            var arrived = _buffer.Length - _leftUnconsumed;
            if (arrived > 0)
            {
                record.Received(arrived);
            }

            return result;
        }
    }

    private sealed class CountingPipeWriter(PipeWriter inner, ConnectionRecord record) : PipeWriter
    {
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Advance(int bytes)
        {
            record.Sent(bytes);
            inner.Advance(bytes);
        }

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => inner.FlushAsync(cancellationToken);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);

        public override ValueTask CompleteAsync(Exception? exception = null) => inner.CompleteAsync(exception);
    }
}
