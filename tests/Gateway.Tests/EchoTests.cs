using System.Net.Sockets;
using System.Security.Cryptography;

namespace Gateway.Tests;

[Collection(ModelGateways.Name)]
public sealed class EchoTests(ModelGatewaysFixture fixture)
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(60);

    /// <summary>Sends all of <paramref name="data"/>, half-closes, and meanwhile reads everything echoed until EOF.</summary>
    private static async Task<byte[]> EchoAsync(Socket socket, byte[] data, CancellationToken cancellationToken)
    {
        var sending = Task.Run(async () =>
        {
            for (var offset = 0; offset < data.Length; offset += 65536)
            {
                await socket.SendAsync(data.AsMemory(offset, Math.Min(65536, data.Length - offset)), SocketFlags.None, cancellationToken);
            }

            socket.Shutdown(SocketShutdown.Send);
        }, cancellationToken);

        using var received = new MemoryStream(data.Length);
        var buffer = new byte[65536];
        int n;
        while ((n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancellationToken)) > 0)
        {
            received.Write(buffer, 0, n);
        }

        await sending;
        return received.ToArray();
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task SeveralMiBSentAndReadConcurrentlyComeBackIdentical(string model)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        var data = RandomNumberGenerator.GetBytes(6 * 1024 * 1024);
        using var socket = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: timeout.Token);
        var echoed = await EchoAsync(socket, data, timeout.Token);
        Assert.Equal(data.Length, echoed.Length);
        Assert.True(data.AsSpan().SequenceEqual(echoed), "echoed bytes differ");
    }

    [Theory]
    [MemberData(nameof(Models.Concurrent), MemberType = typeof(Models))]
    public async Task FiftyClientsAtOnceEachGetTheirOwnBytesBack(string model)
    {
        var gateway = await fixture.For(model);
        using var timeout = new CancellationTokenSource(Patience);
        var results = await Task.WhenAll(Enumerable.Range(0, 50).Select(async i =>
        {
            var data = RandomNumberGenerator.GetBytes(100_000 + i);
            using var socket = await TcpClients.ConnectAsync(gateway.Echo, cancellationToken: timeout.Token);
            var echoed = await EchoAsync(socket, data, timeout.Token);
            return data.AsSpan().SequenceEqual(echoed);
        }));
        Assert.All(results, Assert.True);
    }

    [Theory]
    [MemberData(nameof(Models.All), MemberType = typeof(Models))]
    public async Task ClientThatNeverReadsIsHeldBackAndLosesNothing(string model)
    {
        var gateway = await fixture.For(model);
        using var socket = await TcpClients.ConnectAsync(gateway.Echo);
        var chunk = new byte[65536];
        var sent = await TcpClients.SendUntilHeldBackAsync(socket, at =>
        {
            for (var i = 0; i < chunk.Length; i++)
            {
                chunk[i] = (byte)((at + i) % 251); // a pattern keyed to the stream position survives partial sends
            }

            return chunk;
        }, Patience);

        // Kernel socket buffers on both sides plus the gateway's bounded pipes: tens of MiB at most.
        Assert.InRange(sent, 1, 64L * 1024 * 1024);

        socket.Shutdown(SocketShutdown.Send);
        using var timeout = new CancellationTokenSource(Patience);
        var buffer = new byte[65536];
        long received = 0;
        int got;
        while ((got = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token)) > 0)
        {
            for (var i = 0; i < got; i++)
            {
                Assert.True(buffer[i] == (byte)((received + i) % 251), $"byte {received + i} differs");
            }

            received += got;
        }

        Assert.Equal(sent, received);
    }
}
