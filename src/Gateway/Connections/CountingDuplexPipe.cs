using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Gateway.Connections;

/// <summary>
/// Wraps the transport of a connection that does not count its own bytes (Kestrel's sockets), once, in the
/// connection middleware, and is that connection's <see cref="ITransportTrafficFeature"/> — so no protocol counts
/// bytes itself. Reads count what arrived since the last read; writes count what is advanced. Each counter has one
/// writer (the handler's reads, its writes); the admin listing reads them.
/// </summary>
internal sealed class CountingDuplexPipe : IDuplexPipe, ITransportTrafficFeature
{
    private long _bytesReceived;
    private long _bytesSent;
    private long _lastActivityTick = Environment.TickCount64;

    public CountingDuplexPipe(IDuplexPipe inner)
    {
        Input = new CountingPipeReader(inner.Input, this);
        Output = new CountingPipeWriter(inner.Output, this);
    }

    public PipeReader Input { get; }

    public PipeWriter Output { get; }

    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    public long BytesSent => Interlocked.Read(ref _bytesSent);

    public long LastActivityTick => Volatile.Read(ref _lastActivityTick);

    private void Received(long bytes)
    {
        Interlocked.Add(ref _bytesReceived, bytes);
        Volatile.Write(ref _lastActivityTick, Environment.TickCount64);
    }

    private void Sent(long bytes)
    {
        Interlocked.Add(ref _bytesSent, bytes);
        Volatile.Write(ref _lastActivityTick, Environment.TickCount64);
    }

    private sealed class CountingPipeReader(PipeReader inner, CountingDuplexPipe counts) : PipeReader
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
                counts.Received(arrived);
            }

            return result;
        }
    }

    private sealed class CountingPipeWriter(PipeWriter inner, CountingDuplexPipe counts) : PipeWriter
    {
        public override bool CanGetUnflushedBytes => inner.CanGetUnflushedBytes;

        public override long UnflushedBytes => inner.UnflushedBytes;

        public override void Advance(int bytes)
        {
            counts.Sent(bytes);
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
