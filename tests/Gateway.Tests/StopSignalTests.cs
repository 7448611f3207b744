using System.Diagnostics;
using Gateway.Protocols.Rpc;

namespace Gateway.Tests;

/// <summary>
/// Stop signals sent twice, on a real gateway process: a repeat close behind the first (the same signal delivered
/// to the process group and forwarded by a parent, as <c>timeout … dotnet run</c> does) does not cut the drain
/// short; a second signal sent later does.
/// </summary>
public sealed class StopSignalTests
{
    private const int SigTerm = 15;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    /// <summary>The next reply, or null when the connection ended (closed or reset) without one.</summary>
    private static async Task<RpcResponse?> ReplyOrEndAsync(RpcConnection connection, CancellationToken cancellationToken)
    {
        try
        {
            return await connection.Client.ReceiveAsync(cancellationToken);
        }
        catch (IOException)
        {
            return null;
        }
    }

    [Fact]
    public async Task ASignalRepeatedWithinASecondIsTheSameOneAndOnlyALaterOneStopsAtOnce()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        using var timeout = new CancellationTokenSource(Patience);
        await using var longSleep = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        await using var shortSleep = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        foreach (var (connection, ms, id) in (IEnumerable<(RpcConnection, int, string)>)[(longSleep, 8000, "long"), (shortSleep, 2000, "short")])
        {
            Assert.Equal("pong", (await connection.Client.CallAsync("ping", cancellationToken: timeout.Token)).Out);
            connection.Client.Send("sleep", ms, id);
            await connection.Client.FlushAsync(timeout.Token);
        }

        await Task.Delay(300, timeout.Token); // both sleeps under way

        var first = Stopwatch.StartNew();
        Assert.Equal(0, GatewayProcess.Signal(gateway.Pid, SigTerm));
        await Task.Delay(100, timeout.Token);
        Assert.Equal(0, GatewayProcess.Signal(gateway.Pid, SigTerm));

        // The drain goes on: the 2 s sleep in flight is answered, then its connection is closed.
        var reply = await ReplyOrEndAsync(shortSleep, timeout.Token);
        Assert.True(reply is { Out: "sleep" }, $"the short sleep got no reply (the repeat aborted the drain):\n{gateway.Output}");
        Assert.Equal(("short", 2000), (reply!.Id?.GetString(), reply.Result.GetInt32()));
        Assert.Null(await ReplyOrEndAsync(shortSleep, timeout.Token));
        Assert.True(await gateway.LogsAsync("taken as the same one", Patience), gateway.Output);
        Assert.DoesNotContain("Second stop signal", gateway.Output, StringComparison.Ordinal);
        Assert.False(gateway.HasExited, gateway.Output);

        // A signal more than a second after the first is a second one: the 8 s sleep is cut off, the process exits.
        await Task.Delay(TimeSpan.FromMilliseconds(Math.Max(0, 1500 - first.ElapsedMilliseconds)), timeout.Token);
        Assert.Equal(0, GatewayProcess.Signal(gateway.Pid, SigTerm));
        Assert.True(await gateway.LogsAsync("Second stop signal: closing 1 connection(s) now", Patience), gateway.Output);
        Assert.Null(await ReplyOrEndAsync(longSleep, timeout.Token));
        Assert.Equal(0, await gateway.WaitForExitAsync(Patience));
    }
}
