using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Gateway.Protocols.Rpc;

namespace Gateway.Tests;

internal static class TcpClients
{
    public static async Task<Socket> ConnectAsync(IPEndPoint endpoint, IPAddress? from = null, CancellationToken cancellationToken = default)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            if (from is not null)
            {
                socket.Bind(new IPEndPoint(from, 0));
            }

            await socket.ConnectAsync(endpoint, cancellationToken);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens <paramref name="into"/>.Length connections, <paramref name="parallel"/> at a time, spread over four source
    /// addresses (127.0.0.2–5) so that the ephemeral ports of one do not run short; the caller disposes them.
    /// </summary>
    public static async Task ConnectManyAsync(IPEndPoint endpoint, Socket?[] into, int parallel, CancellationToken cancellationToken)
    {
        using var connecting = new SemaphoreSlim(parallel);
        await Task.WhenAll(Enumerable.Range(0, into.Length).Select(async i =>
        {
            await connecting.WaitAsync(cancellationToken);
            try
            {
                into[i] = await ConnectAsync(endpoint, IPAddress.Parse($"127.0.0.{2 + (i % 4)}"), cancellationToken);
            }
            finally
            {
                connecting.Release();
            }
        }));
    }

    /// <summary>Proves the connection is served (a ping), then puts a 3 s <c>sleep</c> in flight (id <c>in-flight</c>).</summary>
    public static async Task StartSleepInFlightAsync(RpcConnection connection, CancellationToken cancellationToken)
    {
        Assert.Equal("pong", (await connection.Client.CallAsync("ping", cancellationToken: cancellationToken)).Out);
        connection.Client.Send("sleep", 3000, "in-flight");
        await connection.Client.FlushAsync(cancellationToken);
        await Task.Delay(300, cancellationToken);
    }

    /// <summary>Whether connecting to <paramref name="endpoint"/> is refused within about two seconds (a stopping listener).</summary>
    public static async Task<bool> RefusedWithinAsync(IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            try
            {
                using var late = await ConnectAsync(endpoint, cancellationToken: cancellationToken);
                await Task.Delay(20, cancellationToken);
            }
            catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionRefused or SocketError.ConnectionReset)
            {
                return true; // refused once the listen socket is gone; reset if the SYN raced its closing
            }
            catch (SocketException e)
            {
                Assert.Fail($"connecting to a stopping listener failed with {e.SocketErrorCode}: {e.Message}");
            }
        }

        return false;
    }

    /// <summary>
    /// Sends without reading until the server holds the sender back (nothing accepted for 2 s), 512 MiB went or
    /// the patience ran out; returns the bytes sent. <paramref name="next"/> gives what to send from a stream
    /// position, so a partial send resumes where it stopped. Without backpressure the server would buffer without
    /// bound and the 512 MiB cap would end the loop instead.
    /// </summary>
    public static async Task<long> SendUntilHeldBackAsync(Socket socket, Func<long, ArraySegment<byte>> next, TimeSpan patience)
    {
        socket.Blocking = false;
        long sent = 0;
        var stalledSince = DateTime.UtcNow;
        var deadline = DateTime.UtcNow + patience;
        while (sent < 512L * 1024 * 1024 && DateTime.UtcNow < deadline && DateTime.UtcNow - stalledSince < TimeSpan.FromSeconds(2))
        {
            var bytes = next(sent);
            var n = socket.Send(bytes.Array!, bytes.Offset, bytes.Count, SocketFlags.None, out var error);
            if (error == SocketError.WouldBlock)
            {
                await Task.Delay(50);
                continue;
            }

            Assert.Equal(SocketError.Success, error);
            sent += n;
            stalledSince = DateTime.UtcNow;
        }

        socket.Blocking = true;
        return sent;
    }

    /// <summary>Reads until the server closes; returns how many bytes came, or -1 if nothing closed it in time.</summary>
    public static async Task<long> ReadUntilClosedAsync(Socket socket, TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        var buffer = new byte[64 * 1024];
        long total = 0;
        try
        {
            while (true)
            {
                var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cancel.Token);
                if (n == 0)
                {
                    return total;
                }

                total += n;
            }
        }
        catch (OperationCanceledException)
        {
            return -1;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
            return total;
        }
    }
}

/// <summary>An <see cref="RpcClient"/> over a real TCP connection (or TLS over one).</summary>
internal sealed class RpcConnection : IAsyncDisposable
{
    private readonly Stream _stream;

    private RpcConnection(Socket socket, Stream? stream = null)
    {
        Socket = socket;
        _stream = stream ?? new NetworkStream(socket, ownsSocket: true);
        Client = new RpcClient(new DuplexPipe(PipeReader.Create(_stream), PipeWriter.Create(_stream)));
    }

    /// <summary>RPC over TLS, trusting only the certificate in <paramref name="certificatePath"/> (a test's self-signed one).</summary>
    public static async Task<RpcConnection> OpenTlsAsync(IPEndPoint endpoint, string certificatePath)
    {
        var socket = await TcpClients.ConnectAsync(endpoint);
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true));
        using var trusted = X509CertificateLoader.LoadCertificateFromFile(certificatePath);
        var thumbprint = trusted.Thumbprint;
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = endpoint.Address.ToString(),
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.GetCertHashString() == thumbprint,
        });
        return new RpcConnection(socket, tls);
    }

    public Socket Socket { get; }

    public RpcClient Client { get; }

    public static Task<RpcConnection> OpenAsync(IPEndPoint endpoint, CancellationToken cancellationToken = default) =>
        OpenAsync(endpoint, from: null, cancellationToken);

    /// <summary>A connection from a given local address (127.0.0.x: each its own client as far as per-address limits go).</summary>
    public static async Task<RpcConnection> OpenAsync(IPEndPoint endpoint, IPAddress? from, CancellationToken cancellationToken = default) =>
        new(await TcpClients.ConnectAsync(endpoint, from, cancellationToken));

    /// <summary>Closes every connection of a test's list (the ones not opened yet are null).</summary>
    public static async Task DisposeAllAsync(IEnumerable<RpcConnection?> connections)
    {
        foreach (var connection in connections)
        {
            if (connection is not null)
            {
                await connection.DisposeAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _stream.DisposeAsync();
    }

    private sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
