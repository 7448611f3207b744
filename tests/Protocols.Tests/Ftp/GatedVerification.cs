using System.Collections.Concurrent;

namespace Gateway.Protocols.Tests.Ftp;

/// <summary>
/// A password check for <c>FtpPasswordVerifier</c> that records every call and holds each one until the test
/// releases it, so a test decides when verifications end. "right" is the one password that matches.
/// </summary>
internal sealed class GatedVerification : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly SemaphoreSlim _release = new(0);
    private readonly SemaphoreSlim _started = new(0);
    private int _running;
    private int _mostRunning;
    private int _onPoolThreads;

    /// <summary>Passwords in the order their verification started.</summary>
    public ConcurrentQueue<string> Started { get; } = new();

    public int MostRunningAtOnce => Volatile.Read(ref _mostRunning);

    public bool RanOnPoolThreads => Volatile.Read(ref _onPoolThreads) > 0;

    public bool Verify(string password, string encodedHash)
    {
        var running = Interlocked.Increment(ref _running);
        for (var most = Volatile.Read(ref _mostRunning); running > most; most = Volatile.Read(ref _mostRunning))
        {
            Interlocked.CompareExchange(ref _mostRunning, running, most);
        }

        if (Thread.CurrentThread.IsThreadPoolThread)
        {
            Interlocked.Increment(ref _onPoolThreads);
        }

        Started.Enqueue(password);
        _started.Release();
        // Bounded: a test that never releases it fails on its own assertions, without a hashing thread stuck for good.
        var released = _release.Wait(Patience);
        Interlocked.Decrement(ref _running);
        return released && password == "right";
    }

    public void Release(int count = 1) => _release.Release(count);

    /// <summary>Waits (at most 30 s) until one more verification has started.</summary>
    public async Task NextStartedAsync() => Assert.True(await _started.WaitAsync(Patience), "no verification started");

    public void Dispose()
    {
        _release.Dispose();
        _started.Dispose();
    }
}
