using System.Net.Security;
using System.Net.Sockets;
using Gateway.Protocols.Framing;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// One open data connection as a transfer uses it: send bytes, send a file, receive an upload, close. Plain, it
/// keeps the socket's fast paths (sendfile, a receive low-water mark); under PROT P it is TLS over the socket
/// (the server side, as RFC 4217 has it), closed with close_notify, and an upload that ends without the
/// client's close_notify is known to be cut short.
/// </summary>
internal sealed class FtpDataConnection : IAsyncDisposable
{
    private const int CopyBytes = 256 * 1024;

    // Linux: getsockopt(IPPROTO_TCP, TCP_INFO) fills struct tcp_info; tcpi_bytes_acked (since 4.1) is the u64 at offset 120.
    private const int IpProtocolTcp = 6, TcpInfoOption = 11, TcpInfoBytesAckedOffset = 120;

    private readonly Socket _socket;
    private readonly SslStream? _tls;
    private readonly TransportEndWatch? _transport;

    public FtpDataConnection(Socket socket) => _socket = socket;

    private FtpDataConnection(Socket socket, SslStream tls, TransportEndWatch transport)
    {
        _socket = socket;
        _tls = tls;
        _transport = transport;
    }

    /// <summary>TLS over the accepted or connected socket; throws when the handshake fails or takes too long.</summary>
    public static async Task<FtpDataConnection> SecureAsync(Socket socket, SslServerAuthenticationOptions options, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var transport = new TransportEndWatch(new NetworkStream(socket, ownsSocket: false));
        var tls = new SslStream(transport, leaveInnerStreamOpen: false);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(timeout);
            await tls.AuthenticateAsServerAsync(options, deadline.Token);
            return new FtpDataConnection(socket, tls, transport);
        }
        catch
        {
            await tls.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// After the receiving side read its end: true when the client's TLS ended without close_notify (the
    /// connection was cut, so the upload may be short). .NET's SslStream reports both ends alike; after a
    /// close_notify it stops reading, so only a cut reaches the transport's own end.
    /// </summary>
    public bool EndedWithoutCloseNotify => _transport?.ReachedEnd == true;

    /// <summary>ABOR, a stall, the control connection's end: closes the socket under a transfer that cannot be cancelled otherwise (sendfile).</summary>
    public void Abort() => _socket.Dispose();

    /// <summary>
    /// How far the client has taken what we send: the bytes it acknowledged (Linux <c>TCP_INFO</c>'s
    /// <c>tcpi_bytes_acked</c>), which moves during one long sendfile too; -1 where the kernel does not tell.
    /// </summary>
    public long AcknowledgedBytes()
    {
        Span<byte> info = stackalloc byte[TcpInfoBytesAckedOffset + sizeof(long)];
        try
        {
            var length = _socket.GetRawSocketOption(IpProtocolTcp, TcpInfoOption, info);
            return length >= info.Length ? System.Buffers.Binary.BinaryPrimitives.ReadInt64LittleEndian(info[TcpInfoBytesAckedOffset..]) : -1;
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or PlatformNotSupportedException)
        {
            return -1;
        }
    }

    public async Task SendAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        if (_tls is not null)
        {
            await _tls.WriteAsync(bytes, cancellationToken);
            return;
        }

        while (!bytes.IsEmpty)
        {
            var sent = await _socket.SendAsync(bytes, SocketFlags.None, cancellationToken);
            bytes = bytes[sent..];
        }
    }

    /// <summary>
    /// An open file from an offset to its end: sendfile(2) through SendPacketsAsync on a plain connection (no copy
    /// through user space); under TLS the bytes must be encrypted here, so they are copied.
    /// </summary>
    public async Task SendFileAsync(FileStream file, long offset, CancellationToken cancellationToken)
    {
        if (_tls is not null)
        {
            file.Position = offset;
            await file.CopyToAsync(_tls, CopyBytes, cancellationToken);
            return;
        }

        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var packets = new SocketAsyncEventArgs { SendPacketsElements = [new SendPacketsElement(file, offset, 0)] };
        packets.Completed += (_, e) => Complete(e, done);
        if (!_socket.SendPacketsAsync(packets))
        {
            Complete(packets, done);
        }

        await done.Task.WaitAsync(cancellationToken);

        static void Complete(SocketAsyncEventArgs e, TaskCompletionSource done)
        {
            if (e.SocketError == SocketError.Success)
            {
                done.TrySetResult();
            }
            else
            {
                done.TrySetException(new SocketException((int)e.SocketError));
            }
        }
    }

    /// <summary>The upload's receiving side (see <see cref="FtpDataReceiver"/>).</summary>
    public FtpDataReceiver Receiver(int lowWaterBytes, TimeSpan timeout, CancellationToken aborted) =>
        new(_socket, _tls, lowWaterBytes, timeout, aborted);

    /// <summary>
    /// The transfer is over: close_notify under TLS, then both directions shut down, so the client sees the end of
    /// the data. A client that stops reading cannot hold the close_notify up for longer than <paramref name="timeout"/>.
    /// </summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        if (_tls is not null)
        {
            await _tls.ShutdownAsync().WaitAsync(timeout);
        }

        _socket.Shutdown(SocketShutdown.Both);
    }

    public async ValueTask DisposeAsync()
    {
        if (_tls is not null)
        {
            await _tls.DisposeAsync();
        }

        _socket.Dispose();
    }

    /// <summary>The stream under the TLS: passes everything through and notes when the transport itself ends.</summary>
    private sealed class TransportEndWatch(NetworkStream inner) : DuplexStream
    {
        public bool ReachedEnd { get; private set; }

        public override int Read(byte[] buffer, int offset, int count) => Ended(inner.Read(buffer, offset, count), count);

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            Ended(await inner.ReadAsync(buffer, cancellationToken), buffer.Length);

        public override async Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            Ended(await inner.ReadAsync(buffer.AsMemory(offset, count), cancellationToken), count);

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            inner.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }

        // SslStream also makes zero-byte reads (to wait for data without a buffer); those return 0 at any time.
        private int Ended(int read, int asked)
        {
            ReachedEnd |= read == 0 && asked > 0;
            return read;
        }
    }
}
