using System.Buffers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Gateway.Protocols.Framing;

namespace Gateway.Tests;

/// <summary>
/// The minimum data rate (<c>Limits:MinDataRateBytesPerSecond</c> after <c>MinDataRateGraceSeconds</c>): a message in
/// progress trickled slower than that closes its connection with RPC's own error, is counted, and harms no one
/// else; a message that arrives in pieces at a decent rate is served; FTP command lines, typed by hand, are exempt.
/// The rule lives in the read loop every protocol uses, so it is checked on Kestrel, a reactor and the
/// thread-per-connection model.
/// </summary>
public sealed class SlowClientTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    private static string[] Args(string model) =>
    [
        .. GatewayProcess.LoopbackArgs,
        $"--Gateway:Listeners:Rpc:Model={model}", $"--Gateway:Listeners:Ftp:Model={model}",
        "--Gateway:Limits:MinDataRateBytesPerSecond=100", "--Gateway:Limits:MinDataRateGraceSeconds=1",
    ];

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    [InlineData("threads")]
    public async Task AnRpcFrameTrickledByteByByteGetsTooSlowAndIsClosedWhileOthersAreServed(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync(Args(model));
        using var timeout = new CancellationTokenSource(Patience);
        await using var neighbour = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);
        await using var trickler = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);

        // A 120-byte frame at 4 bytes a second: after the 1 s grace it is far under 100 bytes/s.
        var frame = Frame($$"""{"in":"ping","params":"{{new string('x', 80)}}"}""");
        var trickle = Task.Run(async () =>
        {
            foreach (var b in frame)
            {
                try
                {
                    await trickler.Socket.SendAsync(new[] { b }, SocketFlags.None, timeout.Token);
                }
                catch (SocketException)
                {
                    return; // closed by the gateway: the point
                }

                await Task.Delay(250, timeout.Token);
            }
        }, timeout.Token);

        // The neighbour is answered all the while.
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal($"n{i}", (await neighbour.Client.CallAsync("ping", $"n{i}", cancellationToken: timeout.Token)).Result.GetString());
            await Task.Delay(200, timeout.Token);
        }

        var reply = await trickler.Client.ReceiveAsync(timeout.Token);
        Assert.NotNull(reply);
        Assert.Equal("too_slow", reply.ErrorCode);
        Assert.Null(await trickler.Client.ReceiveAsync(timeout.Token)); // then the gateway closes
        await trickle;

        Assert.Equal("still", (await neighbour.Client.CallAsync("ping", "still", cancellationToken: timeout.Token)).Result.GetString());
        using var admin = new AdminApi(gateway);
        Assert.Matches("gateway_protocol_errors_total\\{[^}]*code=\"too_slow\"[^}]*protocol=\"rpc\"[^}]*\\} 1",
            await admin.Http.GetStringAsync(new Uri("/metrics", UriKind.Relative), timeout.Token));
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    [InlineData("threads")]
    public async Task AFrameArrivingInPiecesAtADecentRateIsAnswered(string model)
    {
        await using var gateway = await GatewayProcess.StartAsync(Args(model));
        using var timeout = new CancellationTokenSource(Patience);
        await using var client = await RpcConnection.OpenAsync(gateway.Rpc, timeout.Token);

        // 20 kB in ten pieces over two seconds: well past the grace, far above 100 bytes/s.
        var text = new string('y', 20_000);
        var frame = Frame(JsonSerializer.Serialize(new { @in = "ping", @params = text }));
        var piece = (frame.Length + 9) / 10;
        for (var offset = 0; offset < frame.Length; offset += piece)
        {
            await client.Socket.SendAsync(frame.AsMemory(offset, Math.Min(piece, frame.Length - offset)), SocketFlags.None, timeout.Token);
            await Task.Delay(200, timeout.Token);
        }

        var reply = await client.Client.ReceiveAsync(timeout.Token);
        Assert.NotNull(reply);
        Assert.Equal("pong", reply.Out);
        Assert.Equal(text, reply.Result.GetString());
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    public async Task AnFtpCommandTypedByHandIsServedHoweverSlowly(string model)
    {
        // FTP lines are exempt from the rate: someone at a telnet prompt types a few characters a second.
        await using var gateway = await GatewayProcess.StartAsync(Args(model));
        using var timeout = new CancellationTokenSource(Patience);
        using var control = await TcpClients.ConnectAsync(gateway.Endpoint("ftp"), cancellationToken: timeout.Token);
        using var lines = new StreamReader(new NetworkStream(control, ownsSocket: false), Encoding.ASCII);
        Assert.StartsWith("220 ", await lines.ReadLineAsync(timeout.Token), StringComparison.Ordinal);
        foreach (var b in "NOOP\r\n"u8.ToArray())
        {
            await control.SendAsync(new[] { b }, SocketFlags.None, timeout.Token);
            await Task.Delay(400, timeout.Token); // 2.5 characters a second: well under 100 bytes/s after the 1 s grace
        }

        Assert.StartsWith("200 ", await lines.ReadLineAsync(timeout.Token), StringComparison.Ordinal);
    }

    private static byte[] Frame(string body)
    {
        var writer = new ArrayBufferWriter<byte>();
        LengthPrefixedFrameWriter.WriteFrame(Encoding.UTF8.GetBytes(body), writer);
        return writer.WrittenSpan.ToArray();
    }
}
