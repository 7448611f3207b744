using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Security;
using System.Security.Authentication;
using Gateway.Protocols.Framing;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Explicit FTPS (RFC 4217): AUTH TLS (or SSL) turns the control connection into TLS; PBSZ 0 and PROT P make
/// the data connections TLS too, with the same certificate context, so they can resume the control session.
/// Nothing here touches command parsing: the handler reads lines from whichever pipe the session gives it.
/// </summary>
internal sealed partial class FtpSession
{
    private static readonly string[] TlsMechanisms = ["TLS", "SSL", "TLS-C", "TLS-P"];

    private SslStream? _controlTls;
    private bool _protectData;
    private bool _userRequiresTls;

    /// <summary>Whether the control connection is TLS (since AUTH TLS, or from its first byte on an implicit-FTPS port).</summary>
    public bool IsSecure => _controlTls is not null;

    /// <summary>A connection of an implicit-FTPS port: TLS starts before the greeting (<see cref="StartTlsAsync"/> without a command).</summary>
    public bool IsImplicitTls { get; }

    /// <summary>Whether this command is an AUTH that starts TLS now: the handler then calls <see cref="StartTlsAsync"/>.</summary>
    public bool StartsTls(FtpCommand command) =>
        command.Verb == FtpVerb.Auth && _options.Tls is not null && !IsSecure
        && TlsMechanisms.Contains(command.Argument.Trim(), StringComparer.OrdinalIgnoreCase);

    /// <summary>
    /// Answers 234 and runs the TLS handshake over <paramref name="transport"/>; replies go over TLS from then
    /// on and the returned pipe carries the commands. Null when the handshake failed: the connection must close.
    /// The caller has already dropped any plaintext that followed the AUTH line.
    /// </summary>
    public async Task<IDuplexPipe?> StartTlsAsync(FtpCommand? command, IDuplexPipe transport)
    {
        var started = Stopwatch.GetTimestamp();
        if (command is { } auth)
        {
            await ReplyAsync(234, $"AUTH {auth.Argument.Trim().ToUpperInvariant()} accepted; start the TLS handshake.");
        }

        var tls = new SslStream(new DuplexPipeStream(transport), leaveInnerStreamOpen: false);
        try
        {
            using var deadline = new CancellationTokenSource(_options.TlsHandshakeTimeout);
            await tls.AuthenticateAsServerAsync(_options.Tls!(), deadline.Token);
        }
        catch (Exception e) when (e is AuthenticationException or IOException or OperationCanceledException or InvalidOperationException)
        {
            await tls.DisposeAsync();
            _activity?.TlsHandshakeEnded("control", succeeded: false);
            _activity?.MessageHandled("auth", "tls_handshake_failed", Stopwatch.GetElapsedTime(started).TotalSeconds);
            return null;
        }

        _activity?.TlsHandshakeEnded("control", succeeded: true);

        var input = PipeReader.Create(tls, new StreamPipeReaderOptions(leaveOpen: true));
        var output = PipeWriter.Create(tls, new StreamPipeWriterOptions(leaveOpen: true));
        await _replyLock.WaitAsync();
        try
        {
            _output = output;
            _controlTls = tls;
        }
        finally
        {
            _replyLock.Release();
        }

        if (command is { } done)
        {
            Report(done, started);
        }

        return new SecurePipe(input, output);
    }

    private Task AuthAsync(FtpCommand command) =>
        _options.Tls is null ? ReplyAsync(502, "TLS is not available on this server.")
        : IsSecure ? ReplyAsync(503, "Already using TLS.")
        : ReplyAsync(504, $"AUTH {command.Argument}: not supported; use AUTH TLS.");

    private Task ProtectionBufferSizeAsync() =>
        !IsSecure ? ReplyAsync(503, "PBSZ needs AUTH TLS first.") : ReplyAsync(200, "PBSZ=0");

    private Task ProtectionLevelAsync(FtpCommand command)
    {
        if (!IsSecure)
        {
            return ReplyAsync(503, "PROT needs AUTH TLS first.");
        }

        switch (command.Argument.Trim().ToUpperInvariant())
        {
            case "P":
                _protectData = true;
                return ReplyAsync(200, "Protection level set to P (private): data connections use TLS.");
            case "C":
                _protectData = false;
                return ReplyAsync(200, "Protection level set to C (clear).");
            case "S" or "E":
                return ReplyAsync(536, "Only protection levels C and P are supported.");
            default:
                return ReplyAsync(504, "PROT takes C or P.");
        }
    }

    /// <summary>Whether a login as <paramref name="name"/> must wait for AUTH TLS (the listener's or the user's policy).</summary>
    private bool NeedsTlsFirst(string name) =>
        !IsSecure && (_options.RequireTls || _options.Users.Any(u => u.Name == name && u.RequireTls));

    /// <summary>Why a transfer may not start on a clear data connection now, or null.</summary>
    private string? ClearDataRefusal() =>
        !_protectData && (_options.RequireTls || _userRequiresTls)
            ? "Data connections must be protected here: send PBSZ 0 and PROT P."
            : null;

    /// <summary>The data connection under the current PROT: TLS over the socket for P. Disposes the socket when the handshake fails.</summary>
    private async Task<FtpDataConnection> ProtectAsync(System.Net.Sockets.Socket socket, CancellationToken cancellationToken)
    {
        if (!_protectData)
        {
            return new FtpDataConnection(socket);
        }

        try
        {
            var secure = await FtpDataConnection.SecureAsync(socket, _options.Tls!(), _options.TlsHandshakeTimeout, cancellationToken);
            _activity?.TlsHandshakeEnded("data", succeeded: true);
            return secure;
        }
        catch
        {
            _activity?.TlsHandshakeEnded("data", succeeded: false);
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The control connection's TLS failed after its handshake: counted as the session's last, failed message.</summary>
    public void ReportTlsBroken() => _activity?.MessageHandled("tls", "tls_error", 0);

    /// <summary>Ends TLS on the control connection with close_notify, as a TLS close should.</summary>
    private async Task CloseTlsAsync()
    {
        if (_controlTls is not { } tls)
        {
            return;
        }

        try
        {
            await _output.FlushAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(2)); // a client that stopped reading gets no longer
            await tls.ShutdownAsync().WaitAsync(TimeSpan.FromSeconds(2));
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or InvalidOperationException or TimeoutException
                                   or System.Security.Cryptography.CryptographicException or System.Security.Authentication.AuthenticationException
                                   or Microsoft.AspNetCore.Connections.ConnectionResetException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
        {
            // The client is gone already, or left TLS in a state with no goodbye (a renegotiation it started, which
            // is refused: "shutdown while in init"): nobody to say goodbye to.
        }
        finally
        {
            await tls.DisposeAsync();
        }
    }

    private sealed record SecurePipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;
}
