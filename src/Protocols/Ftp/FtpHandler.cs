using Gateway.Protocols.Framing;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// The FTP control connection: a 220 greeting, then CRLF command lines (pipelined ones, and ones sent before
/// the greeting, are simply read in order). 421 on idle timeout, on shutdown and on an admin close (after a transfer under way has finished).
/// </summary>
public sealed class FtpHandler(FtpOptions options, FtpLoginGuard guard, ProtocolLimits limits) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        // No minimum data rate on command lines: people type them by hand (telnet, nc), and a line is at most
        // 4 KiB; a line never finished still meets the idle timeout, which partial input does not re-arm.
        var lines = new ProtocolReader(connection.Transport.Input, FtpCommandParser.MaxLineBytes);
        await using var session = new FtpSession(connection, options, guard);
        using var wakeOnClose = ConnectionLifetime.CancelReadsOnCloseRequest(connection);
        var idle = new IdleTimeout(limits.IdleTimeout);
        try
        {
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
                await session.ExecuteAsync(command);
            }
        }
        catch (OperationCanceledException) when (idle.HasExpired)
        {
            await session.ReplyQuietlyAsync(421, "Idle timeout: closing the control connection.");
        }
        catch (Exception e) when (ConnectionLifetime.IsExpectedEnd(e, idle, connection))
        {
            // The client went away or the host aborted the connection.
        }
        finally
        {
            idle.Dispose();
        }
    }
}
