using System.Security.Cryptography;
using Gateway.Protocols.Rpc;

namespace Gateway.Protocols.Tests;

/// <summary>
/// RPC <c>work</c> past one slice is heavy: it takes one of the process's CPU slots in turn, one at a time per
/// connection, and stops — counted as abandoned — when its connection ends, whether it runs or waits.
/// Several in-memory connections share one handler, as the connections of one listener do.
/// </summary>
public sealed class HeavyWorkTests : IDisposable
{
    private const long Long = RpcMethods.MaxWorkRounds; // seconds of CPU: still running whenever a test looks
    private const long Short = RpcMethods.WorkSliceRounds + 1; // heavy, but milliseconds
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private readonly CpuSlots _slots = new(1);
    private readonly RpcHandler _handler;
    private readonly CancellationTokenSource _timeout = new(Patience);
    private readonly List<Client> _clients = [];

    public HeavyWorkTests() => _handler = new RpcHandler(new ProtocolLimits { IdleTimeout = TimeSpan.Zero }, _slots);

    public void Dispose()
    {
        foreach (var client in _clients)
        {
            // As a transport does when its client goes: ends a waiting read, and whatever a failed test left running.
            client.Connection.ClientOutput.Complete();
            client.Connection.Close();
        }

        // Bounded: a handler that ignored the close has failed its test already.
        Task.WhenAll(_clients.Select(c => c.Handler)).ContinueWith(_ => { }, TaskScheduler.Default).Wait(Patience);
        foreach (var client in _clients)
        {
            client.Dispose();
        }

        _slots.Dispose();
        _timeout.Dispose();
    }

    [Fact]
    public async Task AHeavyWorkStopsWhenItsConnectionEndsFreesItsSlotAndIsCountedAsAbandoned()
    {
        var a = Connect();
        await a.SendAsync(Long, _timeout.Token);
        await WaitUntilAsync(() => _slots.Running == 1, "the work never took its slot");

        a.Connection.Close();
        await a.Handler.WaitAsync(_timeout.Token); // stopped within a slice, not after seconds of work
        Assert.Equal(0, _slots.Running);
        Assert.Equal(["work"], a.Activity.Abandoned);
        Assert.Empty(a.Activity.Messages);
        Assert.Null(await a.Rpc.ReceiveAsync(_timeout.Token)); // no reply
    }

    [Fact]
    public async Task AWaiterWhoseClientLeavesGivesUpItsTurnAndTheNextRunsWhenTheSlotIsFree()
    {
        var running = Connect();
        await running.SendAsync(Long, _timeout.Token);
        await WaitUntilAsync(() => _slots.Running == 1, "the first work never took its slot");
        var leaving = Connect();
        await leaving.SendAsync(Short, _timeout.Token);
        var next = Connect();
        await next.SendAsync(Short, _timeout.Token);
        await WaitUntilAsync(() => _slots.Waiting == 2, "the other two never queued");

        leaving.Connection.Close();
        await leaving.Handler.WaitAsync(_timeout.Token);
        Assert.Equal(["work"], leaving.Activity.Abandoned);
        Assert.Equal((1, 1), (_slots.Running, _slots.Waiting));

        running.Connection.Close();
        var reply = await next.Rpc.ReceiveAsync(_timeout.Token);
        Assert.Equal(("work", Short), (reply?.Out, reply?.Result.GetProperty("rounds").GetInt64()));
        Assert.Equal(Digest(Short), reply?.Result.GetProperty("digest").GetString());
        Assert.Equal(["work"], running.Activity.Abandoned);
        Assert.Empty(next.Activity.Abandoned);
    }

    [Fact]
    public async Task AConnectionThatPipelinesHeavyWorkHoldsOneSlotAtATime()
    {
        using var two = new CpuSlots(2);
        var handler = new RpcHandler(new ProtocolLimits { IdleTimeout = TimeSpan.Zero }, two);
        var pipelining = Connect(handler);
        pipelining.Rpc.Send("work", Long, 1);
        pipelining.Rpc.Send("work", Long, 2);
        pipelining.Rpc.Send("work", Long, 3);
        await pipelining.Rpc.FlushAsync(_timeout.Token);
        await WaitUntilAsync(() => two.Running == 1, "the first work never took a slot");

        // The second slot is free for another connection: the pipelined requests wait behind their first.
        var other = Connect(handler);
        await other.SendAsync(Long, _timeout.Token);
        await WaitUntilAsync(() => two.Running == 2 && two.Waiting == 0, $"running {two.Running}, waiting {two.Waiting}");

        pipelining.Connection.Close();
        other.Connection.Close();
        await Task.WhenAll(pipelining.Handler, other.Handler).WaitAsync(_timeout.Token);
        Assert.Equal(["work"], pipelining.Activity.Abandoned); // the first; the two behind it never started
        Assert.Equal(0, two.Running);
    }

    [Fact]
    public async Task WorkOfOneSliceRunsAtOnceEvenWhenEverySlotIsTaken()
    {
        var heavy = Connect();
        await heavy.SendAsync(Long, _timeout.Token);
        await WaitUntilAsync(() => _slots.Running == 1, "the heavy work never took its slot");

        var light = Connect();
        var reply = await light.Rpc.CallAsync("work", RpcMethods.WorkSliceRounds, cancellationToken: _timeout.Token);
        Assert.Equal(Digest(RpcMethods.WorkSliceRounds), reply.Result.GetProperty("digest").GetString());
        Assert.Equal((1, 0), (_slots.Running, _slots.Waiting));
    }

    [Fact]
    public async Task HeavyWorkRunsOnTheQueuesOwnThreadsAndLeavesThePoolFree()
    {
        // Every slot of a queue as wide as the machine busy: the pool's threads are not the ones computing.
        using var wide = new CpuSlots(Environment.ProcessorCount, "test CPU work");
        using var release = new ManualResetEventSlim();
        var running = Enumerable.Range(0, wide.Concurrency).Select(_ => wide.RunAsync(static (gate, _) =>
        {
            var thread = Thread.CurrentThread;
            gate.Wait(Patience, CancellationToken.None);
            return (thread.IsThreadPoolThread, thread.Name);
        }, release, _timeout.Token).AsTask()).ToArray();
        await WaitUntilAsync(() => wide.Running == wide.Concurrency, "the jobs never took their slots");

        Assert.True(await Task.Run(() => true).WaitAsync(_timeout.Token)); // the pool still runs its own work
        release.Set();
        Assert.All(await Task.WhenAll(running), ran => Assert.Equal((false, "test CPU work"), ran));
        Assert.Equal(0, wide.Running);
    }

    [Fact]
    public void WorkStopsBetweenSlicesOnceItsTokenFires()
    {
        using var stop = new CancellationTokenSource();
        stop.Cancel();
        Assert.Equal(Convert.ToHexStringLower(new byte[32]), RpcMethods.Work(0, stop.Token));
        Assert.Throws<OperationCanceledException>(() => RpcMethods.Work(1, stop.Token));
        Assert.Equal(Digest(3), RpcMethods.Work(3, CancellationToken.None));
    }

    private static string Digest(long rounds)
    {
        var hash = new byte[32];
        for (long i = 0; i < rounds; i++)
        {
            hash = SHA256.HashData(hash);
        }

        return Convert.ToHexStringLower(hash);
    }

    private Client Connect(RpcHandler? handler = null)
    {
        var client = new Client(handler ?? _handler);
        _clients.Add(client);
        return client;
    }

    private async Task WaitUntilAsync(Func<bool> condition, string failure)
    {
        while (!condition())
        {
            Assert.False(_timeout.IsCancellationRequested, failure);
            await Task.Delay(10, CancellationToken.None);
        }
    }

    /// <summary>One client: its in-memory connection, the handler serving it, and what the handler reported.</summary>
    private sealed class Client : IDisposable
    {
        public Client(RpcHandler handler)
        {
            Connection.Context.Features.Set<IProtocolActivityFeature>(Activity);
            Rpc = new RpcClient(Connection.ClientPipe);
            Handler = Connection.RunAsync(handler);
        }

        public InMemoryConnection Connection { get; } = new();

        public RecordingActivity Activity { get; } = new();

        public RpcClient Rpc { get; }

        public Task Handler { get; }

        public async Task SendAsync(long rounds, CancellationToken cancellationToken)
        {
            Rpc.Send("work", rounds);
            await Rpc.FlushAsync(cancellationToken);
        }

        public void Dispose()
        {
            Rpc.Dispose();
            Connection.Dispose();
        }
    }
}
