using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

/// <summary>The password verifier's threads and queue, with a verification the test holds and releases.</summary>
public sealed class FtpPasswordVerifierTests : IDisposable
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(30);
    private readonly GatedVerification _gate = new();

    public void Dispose() => _gate.Dispose();

    private FtpPasswordVerifier Verifier(int threads, int maxWaiting) => new(threads, maxWaiting, _gate.Verify);

    [Fact]
    public async Task AtMostTheConfiguredNumberRunAtOnceAndNeverOnPoolThreads()
    {
        using var verifier = Verifier(threads: 2, maxWaiting: 10);
        var results = Enumerable.Range(0, 8).Select(i => verifier.VerifyAsync($"p{i}", "hash", Long, CancellationToken.None)).ToArray();
        Assert.Equal(8, verifier.Pending);
        await _gate.NextStartedAsync();
        await _gate.NextStartedAsync();
        for (var i = 0; i < 6; i++)
        {
            _gate.Release();
            await _gate.NextStartedAsync(); // one ends, the next starts: never a third beside the two
        }

        _gate.Release(2);
        Assert.All(await Task.WhenAll(results), r => Assert.Equal(FtpVerification.Mismatched, r));
        Assert.Equal((Most: 2, Started: 8, OnPool: false), (Most: _gate.MostRunningAtOnce, Started: _gate.Started.Count, OnPool: _gate.RanOnPoolThreads));
        Assert.Equal(0, verifier.Pending);
    }

    [Fact]
    public async Task VerificationsStartInTheOrderTheyArrived()
    {
        using var verifier = Verifier(threads: 1, maxWaiting: 10);
        var first = verifier.VerifyAsync("p0", "hash", Long, CancellationToken.None);
        await _gate.NextStartedAsync();
        var rest = Enumerable.Range(1, 6).Select(i => verifier.VerifyAsync($"p{i}", "hash", Long, CancellationToken.None)).ToArray();
        _gate.Release(7);
        await Task.WhenAll([first, .. rest]);
        Assert.Equal(["p0", "p1", "p2", "p3", "p4", "p5", "p6"], _gate.Started);
    }

    [Fact]
    public async Task BeyondTheRunningAndTheWaitingTheAnswerIsQueueFullAtOnce()
    {
        using var verifier = Verifier(threads: 1, maxWaiting: 2);
        var running = verifier.VerifyAsync("right", "hash", Long, CancellationToken.None);
        await _gate.NextStartedAsync();
        var waiting = new[] { verifier.VerifyAsync("p1", "hash", Long, CancellationToken.None), verifier.VerifyAsync("p2", "hash", Long, CancellationToken.None) };
        var refused = verifier.VerifyAsync("p3", "hash", Long, CancellationToken.None);
        Assert.True(refused.IsCompletedSuccessfully, "a full queue answers without waiting");
        Assert.Equal(FtpVerification.QueueFull, await refused);
        _gate.Release(3);
        Assert.Equal(FtpVerification.Matched, await running);
        await Task.WhenAll(waiting);
        Assert.Equal(["right", "p1", "p2"], _gate.Started);
    }

    [Fact]
    public async Task AWaiterThatGivesUpLeavesTheQueueAndIsNeverVerified()
    {
        using var verifier = Verifier(threads: 1, maxWaiting: 2);
        var running = verifier.VerifyAsync("p0", "hash", Long, CancellationToken.None);
        await _gate.NextStartedAsync();
        using var connectionEnded = new CancellationTokenSource();
        var cancelled = verifier.VerifyAsync("cancelled", "hash", Long, connectionEnded.Token);
        var timedOut = verifier.VerifyAsync("timed-out", "hash", TimeSpan.FromMilliseconds(50), CancellationToken.None);
        Assert.Equal(3, verifier.Pending);

        await connectionEnded.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled);
        Assert.Equal(FtpVerification.TimedOut, await timedOut);
        Assert.Equal(1, verifier.Pending);

        var later = verifier.VerifyAsync("later", "hash", Long, CancellationToken.None);
        _gate.Release(2);
        await Task.WhenAll(running, later);
        Assert.Equal(["p0", "later"], _gate.Started);
    }

    [Fact]
    public async Task DisposingCancelsWhatWaits()
    {
        var verifier = Verifier(threads: 1, maxWaiting: 2);
        var running = verifier.VerifyAsync("p0", "hash", Long, CancellationToken.None);
        await _gate.NextStartedAsync();
        var waiting = verifier.VerifyAsync("p1", "hash", Long, CancellationToken.None);
        verifier.Dispose();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting);
        _gate.Release();
        Assert.Equal(FtpVerification.Mismatched, await running); // the one under way finishes
        await Assert.ThrowsAsync<ObjectDisposedException>(() => verifier.VerifyAsync("p2", "hash", Long, CancellationToken.None));
        Assert.Equal(["p0"], _gate.Started);
    }

    [Fact]
    public async Task AVerificationThatThrowsFailsItsWaiterAndTheThreadGoesOn()
    {
        using var verifier = new FtpPasswordVerifier(1, 2, (password, _) => password == "bug" ? throw new InvalidOperationException("a bug") : password == "right");
        await Assert.ThrowsAsync<InvalidOperationException>(() => verifier.VerifyAsync("bug", "hash", Long, CancellationToken.None));
        Assert.Equal(FtpVerification.Matched, await verifier.VerifyAsync("right", "hash", Long, CancellationToken.None));
        Assert.Equal(0, verifier.Pending);
    }
}
