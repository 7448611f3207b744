using System.Buffers;

namespace Gateway.Models;

/// <summary>
/// One buffer rented from the array pool in a chain of them, the unit of a reactor connection's input and
/// output (<see cref="SocketInput"/>, <see cref="SocketOutput"/>). Rented when bytes come and returned when they
/// are gone; the segment objects themselves are kept for reuse per thread, not per connection, so a quiet
/// connection holds neither.
/// </summary>
internal sealed class BufferSegment : ReadOnlySequenceSegment<byte>
{
    /// <summary>Enough for the reactor threads' and the pool's churn; more are left to the collector.</summary>
    private const int CachedPerThread = 16;

    [ThreadStatic]
    private static Stack<BufferSegment>? t_cache;

    private byte[] _array = [];

    private BufferSegment()
    {
    }

    /// <summary>Where the written bytes end.</summary>
    public int End { get; private set; }

    public int Free => _array.Length - End;

    public Memory<byte> FreeMemory => _array.AsMemory(End);

    public Span<byte> FreeSpan => _array.AsSpan(End);

    public BufferSegment? NextSegment => (BufferSegment?)Next;

    /// <summary>A segment with room for at least <paramref name="bytes"/>, whose first byte is number <paramref name="runningIndex"/> of its chain.</summary>
    public static BufferSegment Rent(int bytes, long runningIndex)
    {
        var segment = t_cache is { Count: > 0 } cache ? cache.Pop() : new BufferSegment();
        segment._array = ArrayPool<byte>.Shared.Rent(Math.Max(bytes, 1));
        segment.RunningIndex = runningIndex;
        return segment;
    }

    public void Grow(int bytes)
    {
        End += bytes;
        Memory = _array.AsMemory(0, End);
    }

    public void Link(BufferSegment next) => Next = next;

    /// <summary>Gives the buffer back to the pool and the segment to this thread's cache; neither may be used after.</summary>
    public void Return()
    {
        ArrayPool<byte>.Shared.Return(_array);
        _array = [];
        End = 0;
        Memory = ReadOnlyMemory<byte>.Empty;
        Next = null;
        var cache = t_cache ??= new Stack<BufferSegment>(CachedPerThread);
        if (cache.Count < CachedPerThread)
        {
            cache.Push(this);
        }
    }
}
