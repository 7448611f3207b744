using System.Buffers;
using System.IO.Pipelines;
using Gateway.Protocols.Echo;

namespace Gateway.Protocols.Tests;

public sealed class EchoHandlerTests : IDisposable
{
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(10));

    public void Dispose() => _timeout.Dispose();

    private static EchoHandler Handler(TimeSpan? idle = null) => new(new ProtocolLimits { IdleTimeout = idle ?? TimeSpan.Zero });

    [Fact]
    public async Task EveryByteComesBackInOrderUntilTheClientCloses()
    {
        using var connection = new InMemoryConnection();
        var handler = connection.RunAsync(Handler());
        var data = new byte[1 << 20];
        Random.Shared.NextBytes(data);
        var reading = connection.ReadToEndAsync(_timeout.Token);
        for (var offset = 0; offset < data.Length; offset += 7919)
        {
            await connection.ClientOutput.WriteAsync(data.AsMemory(offset, Math.Min(7919, data.Length - offset)), _timeout.Token);
        }

        await connection.ClientOutput.CompleteAsync();
        Assert.Equal(data, await reading);
        await handler.WaitAsync(_timeout.Token);
    }

    [Fact]
    public async Task ClientThatNeverReadsStopsTheServerReading()
    {
        // Small pipes as a transport would have: the handler may hold little unread input and unsent output.
        var small = new PipeOptions(pauseWriterThreshold: 64 * 1024, resumeWriterThreshold: 32 * 1024);
        using var connection = new InMemoryConnection(serverOutput: small, serverInput: small);
        var handler = connection.RunAsync(Handler());

        var chunk = new byte[8192];
        long sent = 0;
        var blocked = false;
        while (sent < 16 * 1024 * 1024)
        {
            chunk.AsSpan().Fill((byte)(sent / chunk.Length));
            var flush = connection.ClientOutput.WriteAsync(chunk, _timeout.Token).AsTask();
            if (await Task.WhenAny(flush, Task.Delay(500, _timeout.Token)) != flush)
            {
                blocked = true; // the server stopped reading: the client's writes no longer go anywhere
                break;
            }

            sent += chunk.Length;
        }

        Assert.True(blocked, $"sent {sent} bytes without being held back");
        Assert.InRange(sent, 64 * 1024, 256 * 1024);

        // Once the client reads, everything flows again and nothing was lost.
        var reading = connection.ReadToEndAsync(_timeout.Token);
        await connection.ClientOutput.CompleteAsync();
        var echoed = await reading;
        Assert.Equal(sent + chunk.Length, echoed.Length);
        for (var i = 0; i < echoed.Length; i += chunk.Length)
        {
            Assert.Equal((byte)(i / chunk.Length), echoed[i]);
        }

        await handler.WaitAsync(_timeout.Token);
    }

    [Fact]
    public async Task CloseRequestEndsTheEcho()
    {
        using var connection = new InMemoryConnection();
        var handler = connection.RunAsync(Handler());
        await connection.ClientOutput.WriteAsync("abc"u8.ToArray(), _timeout.Token);
        var read = await connection.ClientInput.ReadAsync(_timeout.Token);
        Assert.Equal("abc"u8.ToArray(), read.Buffer.ToArray());
        connection.ClientInput.AdvanceTo(read.Buffer.End);

        connection.RequestClose();
        await handler.WaitAsync(_timeout.Token);
        Assert.Empty(await connection.ReadToEndAsync(_timeout.Token));
    }

    [Fact]
    public async Task IdleConnectionIsClosed()
    {
        using var connection = new InMemoryConnection();
        var handler = connection.RunAsync(Handler(TimeSpan.FromMilliseconds(200)));
        await handler.WaitAsync(_timeout.Token);
        Assert.Empty(await connection.ReadToEndAsync(_timeout.Token));
    }
}
