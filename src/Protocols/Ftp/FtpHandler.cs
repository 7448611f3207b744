using Gateway.Protocols.Framing;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// The FTP control connection: a 220 greeting, then CRLF command lines (pipelined ones, and ones sent before
/// the greeting, are simply read in order). 421 on idle timeout, on shutdown and on an admin close (after a transfer under way has finished).
/// AUTH TLS switches the lines to a TLS pipe (the session runs the handshake); nothing else here knows about TLS.
/// </summary>
public sealed class FtpHandler(FtpOptions options, FtpAuthenticator authenticator, FtpPassiveListeners passiveListeners, ProtocolLimits limits) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        // No minimum data rate on command lines: people type them by hand (telnet, nc), and a line is at most
        // 4 KiB; a line never finished still meets the idle timeout, which partial input does not re-arm.
        var lines = new ProtocolReader(connection.Transport.Input, FtpCommandParser.MaxLineBytes);
        await using var session = new FtpSession(connection, options, authenticator, passiveListeners, limits.IdleTimeout);
        var wakeOnClose = ConnectionLifetime.CancelReadsOnCloseRequest(connection);
        // A drain or an admin close lets a transfer finish within its grace; the abort that ends the grace (or the
        // client's leaving) ends the transfer too, so neither the handler nor the open file outlive the connection.
        using var endTransferOnClose = connection.ConnectionClosed.Register(static s => ((FtpSession)s!).AbortTransfer(), session);
        var idle = new IdleTimeout(limits.IdleTimeout);
        try
        {
            if (session.IsImplicitTls)
            {
                // Implicit FTPS: TLS from the first byte, then everything as after AUTH TLS.
                if (await session.StartTlsAsync(null, connection.Transport) is not { } secure)
                {
                    return;
                }

                lines = new ProtocolReader(secure.Input, FtpCommandParser.MaxLineBytes);
                await wakeOnClose.DisposeAsync();
                wakeOnClose = ConnectionLifetime.CancelReadsOnCloseRequest(connection, secure.Input);
            }

            await session.ReplyAsync(220, "Gateway FTP server ready.");
            while (!session.IsClosing)
            {
                idle.Arm();
                ProtocolReadResult<System.Buffers.ReadOnlySequence<byte>> read;
                try
                {
                    read = await lines.ReadAsync(LineReader.Instance, idle.Token);
                }
                catch (OperationCanceledException) when (idle.HasExpired && session.TransferInProgress is { } transfer)
                {
                    // A quiet control connection during a long transfer is not idle: wait for it, start afresh.
                    await transfer;
                    idle.Dispose();
                    idle = new IdleTimeout(limits.IdleTimeout);
                    continue;
                }

                switch (read.Status)
                {
                    case ProtocolReadStatus.Canceled:
                        // Asked to close (drain or admin): a transfer under way finishes first (its 226 goes out
                        // as usual), then the client's next command meets the 421.
                        if (session.TransferInProgress is { } running)
                        {
                            await running;
                        }

                        await session.ReplyAsync(421, "Service closing: the server is stopping or an administrator closed this connection.");
                        return;
                    case ProtocolReadStatus.Completed:
                        return;
                    case ProtocolReadStatus.TooLarge:
                        await session.RejectLineAsync(500, "Command too long.", "too_large");
                        continue;
                }

                var command = FtpCommandParser.Parse(read.Message);
                lines.Advance();
                if (session.StartsTls(command))
                {
                    // Anything after the AUTH line was sent before the client could know TLS would start: a
                    // plaintext injection (CVE-2011-0411's class), dropped unread, before the 234 goes out.
                    lines.DiscardBuffered();
                    if (await session.StartTlsAsync(command, connection.Transport) is not { } secure)
                    {
                        return; // the handshake failed: nothing more can be said on this connection
                    }

                    lines = new ProtocolReader(secure.Input, FtpCommandParser.MaxLineBytes);
                    await wakeOnClose.DisposeAsync();
                    wakeOnClose = ConnectionLifetime.CancelReadsOnCloseRequest(connection, secure.Input);
                    continue;
                }

                await session.ExecuteAsync(command);
            }
        }
        catch (OperationCanceledException) when (idle.HasExpired)
        {
            await session.ReplyQuietlyAsync(421, "Idle timeout: closing the control connection.");
        }
        catch (IOException) when (session.IsSecure)
        {
            // The client broke the TLS layer under the commands (a renegotiation it asked for, which is refused; a
            // bad record): nothing more can be said on this connection.
            session.ReportTlsBroken();
        }
        catch (Exception e) when (ConnectionLifetime.IsExpectedEnd(e, idle, connection))
        {
            // The client went away or the host aborted the connection.
        }
        finally
        {
            await wakeOnClose.DisposeAsync();
            idle.Dispose();
        }
    }
}
