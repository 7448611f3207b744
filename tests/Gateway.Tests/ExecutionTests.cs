using System.Buffers;
using System.Net.Sockets;
using System.Text;
using Gateway.Protocols.Framing;
using Xunit.Abstractions;

namespace Gateway.Tests;

/// <summary>
/// Inline execution (<c>Gateway:Execution=inline</c>, the default) runs handlers on the I/O thread that read their
/// bytes. With one reactor thread, every connection of the listener shares that thread, so what one connection
/// asks for must not hold the others: a heavy method leaves the thread, and a flood of pipelined requests yields
/// after a budget. Proven by order of arrival, never by timing: the neighbour's answer comes first.
/// </summary>
public sealed class ExecutionTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(90);

    /// <summary>The models whose connections share I/O threads: the reactors (one thread here) and Kestrel's sockets.</summary>
    public static TheoryData<string> OneIoThread => ["kestrel", "epoll", "epoll-et", "poll", "select"];

    private static Task<GatewayProcess> StartAsync(string model) => GatewayProcess.StartAsync(
        [.. GatewayProcess.LoopbackArgs, .. Models.Args(model, "Rpc"), "--Gateway:Models:ReactorThreads=1", "--Gateway:Execution=inline"]);

    [Theory]
    [MemberData(nameof(OneIoThread))]
    public async Task APingIsAnsweredWhileAnotherConnectionsHeavyWorkRuns(string model)
    {
        await using var gateway = await StartAsync(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var heavy = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        await using var neighbour = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await neighbour.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);

        var idle = ProcessCpu.Seconds([gateway.Pid]);
        heavy.Client.Send("work", RpcWorkRounds);
        await heavy.Client.FlushAsync(timeout.Token);
        await ProcessCpu.WaitForAsync([gateway.Pid], idle, 0.3, "the work never started", timeout.Token);
        var heavyReply = heavy.Client.ReceiveAsync(timeout.Token).AsTask();

        var pong = await neighbour.Client.CallAsync("ping", cancellationToken: timeout.Token);
        Assert.Equal("pong", pong.Out);
        Assert.False(heavyReply.IsCompleted, $"{model}: the work was answered before the neighbour's ping; it held the thread the ping needed");

        var work = await heavyReply;
        Assert.Equal("work", work?.Out);
    }

    [Theory]
    [MemberData(nameof(OneIoThread))]
    public async Task APipelinedFloodYieldsToANeighbourOnTheSameThread(string model)
    {
        const int Flood = 200_000;
        await using var gateway = await StartAsync(model);
        using var timeout = new CancellationTokenSource(Patience);
        await using var neighbour = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        Assert.Equal("pong", (await neighbour.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);

        await using var flooder = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        var frames = new ArrayBufferWriter<byte>();
        var ping = Encoding.UTF8.GetBytes("""{"in":"ping","id":1}""");
        for (var i = 0; i < Flood; i++)
        {
            LengthPrefixedFrameWriter.WriteFrame(ping, frames);
        }

        var answered = 0;
        var reading = Task.Run(async () =>
        {
            while (Volatile.Read(ref answered) < Flood && await flooder.Client.ReceiveAsync(timeout.Token) is { Out: "pong" })
            {
                Interlocked.Increment(ref answered);
            }
        });
        var sending = flooder.Socket.SendAsync(frames.WrittenMemory, SocketFlags.None, timeout.Token).AsTask();
        while (Volatile.Read(ref answered) < 1000)
        {
            Assert.False(reading.IsCompleted || timeout.IsCancellationRequested, $"{model}: the flood is not being answered");
            await Task.Delay(1, CancellationToken.None);
        }

        Assert.Equal("pong", (await neighbour.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
        var answeredBefore = Volatile.Read(ref answered);
        output.WriteLine($"{model}: the neighbour's pong came after {answeredBefore} of the flood's {Flood} replies");
        Assert.True(answeredBefore < Flood, $"{model}: the neighbour waited for the whole flood of {Flood} pipelined pings");

        await sending;
        await reading;
        Assert.Equal(Flood, answered);
    }

    /// <summary>The largest <c>work</c>: seconds of one core, far past one slice.</summary>
    private const long RpcWorkRounds = 10_000_000;
}
