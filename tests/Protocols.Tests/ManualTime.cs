namespace Gateway.Protocols.Tests;

/// <summary>A clock that moves only when a test says so, for windows and lifetimes measured with <see cref="TimeProvider"/>.</summary>
internal sealed class ManualTime : TimeProvider
{
    private long _ticks;

    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    public override long GetTimestamp() => Interlocked.Read(ref _ticks);

    public void Advance(TimeSpan by) => Interlocked.Add(ref _ticks, by.Ticks);
}
