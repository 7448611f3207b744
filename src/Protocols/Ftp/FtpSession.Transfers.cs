using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Protocols.Ftp;

internal enum FtpListKind
{
    Long,
    Names,
    Facts,
}

/// <summary>
/// Data connections and transfers. A transfer runs beside the control loop, which keeps reading commands:
/// ABOR interrupts it (426, then 226), STAT and NOOP answer at once, anything else waits for it to end.
/// 226 is sent only once the file is closed and the data connection is closed.
/// </summary>
internal sealed partial class FtpSession
{
    private const int BufferBytes = 256 * 1024;

    /// <summary>
    /// How long a PASV waits at most for its address to have a place below the cap before it is refused: places of
    /// honest clients come free within milliseconds, so a fraction of the data timeout (which frees a hoarder's) is plenty.
    /// </summary>
    private TimeSpan PassivePlaceWait => TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(2).Ticks, _options.DataTimeout.Ticks / 4));

    private Transfer? _transfer;

    private const string Receive = "receive", Transmit = "transmit";

    private delegate Task<(int Code, string Text)> TransferBody(FtpDataConnection data, Transfer transfer, CancellationToken cancellationToken);

    private sealed class Transfer(string description, string direction)
    {
        private long _bytes;

        public string Description { get; } = description;

        /// <summary><c>receive</c> for uploads, <c>transmit</c> for downloads and listings.</summary>
        public string Direction { get; } = direction;

        public CancellationTokenSource Cancel { get; } = new();

        /// <summary>Set when the stall watch ended it: the client stopped taking the data.</summary>
        public bool Stalled { get; set; }

        private volatile bool _answering;

        /// <summary>
        /// Set just before the final reply is written: a command the client sends once it has read that reply
        /// belongs after the transfer, though the transfer's task may not have returned yet.
        /// </summary>
        public bool Answering { get => _answering; set => _answering = value; }

        public Task Task { get; set; } = Task.CompletedTask;

        public long Bytes => Interlocked.Read(ref _bytes);

        public void Moved(long bytes) => Interlocked.Add(ref _bytes, bytes);
    }

    /// <summary>The transfer in progress, if any: the control connection is quiet then without being idle.</summary>
    public Task? TransferInProgress => _transfer?.Task is { IsCompleted: false } task ? task : null;

    private async Task<bool> HandleDuringTransferAsync(FtpCommand command, Transfer running)
    {
        if (running.Answering)
        {
            await running.Task; // its final reply goes out first; the command is then an ordinary one
            return false;
        }

        switch (command.Verb)
        {
            case FtpVerb.Abor:
                await running.Cancel.CancelAsync();
                await running.Task; // it answers 426
                await ReplyAsync(226, "ABOR successful.");
                return true;
            case FtpVerb.Stat:
                await ReplyAsync(213, $"Transfer in progress: {running.Description}, {running.Bytes} bytes so far.");
                return true;
            case FtpVerb.Noop:
                await ReplyAsync(200, "NOOP ok.");
                return true;
            default:
                await running.Task;
                return false;
        }
    }

    /// <summary>
    /// The control connection has ended (the client left, the host aborted it after its grace): a transfer under way
    /// ends now rather than when it would have finished. Safe to call from any thread.
    /// </summary>
    public void AbortTransfer()
    {
        if (_transfer is { } transfer && !transfer.Task.IsCompleted)
        {
            transfer.Cancel.Cancel();
        }
    }

    public async Task CancelTransferAsync()
    {
        if (_transfer is { } transfer)
        {
            await transfer.Cancel.CancelAsync();
            await transfer.Task.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    private async Task PassiveAsync(bool extended)
    {
        if (_epsvAll && !extended)
        {
            await ReplyAsync(503, "Only EPSV is allowed after EPSV ALL.");
            return;
        }

        var advertised = FtpDataChannel.Canonical(_options.PassiveAddress ?? _local);
        if (!extended && advertised.AddressFamily != AddressFamily.InterNetwork)
        {
            await ReplyAsync(425, "PASV needs IPv4; use EPSV.");
            return;
        }

        IPEndPoint? bound;
        try
        {
            // An honest client connects right after the reply, so its address's places come free within
            // milliseconds: many parallel sessions from one address (lftp, rclone, a NAT) wait a moment for one;
            // a party that only hoards ports waits in vain and is refused.
            var waited = Stopwatch.StartNew();
            while ((bound = _data.ListenPassive(_local, _peer, _options, _passiveListeners)) is null && waited.Elapsed < PassivePlaceWait)
            {
                await Task.Delay(20);
            }
        }
        catch (IOException)
        {
            _activity?.LimitReached(ProtocolLimitNames.PassivePorts);
            await ReplyAsync(425, "No free passive port; try again later.");
            return;
        }

        if (bound is null)
        {
            _activity?.LimitReached(ProtocolLimitNames.PassivePortsPerAddress);
            await ReplyAsync(425, "Too many passive data connections pending from your address; try again later.");
            return;
        }

        if (extended)
        {
            await ReplyAsync(229, $"Entering Extended Passive Mode (|||{bound.Port}|).");
            return;
        }

        var octets = string.Join(',', advertised.GetAddressBytes());
        await ReplyAsync(227, string.Create(CultureInfo.InvariantCulture, $"Entering Passive Mode ({octets},{bound.Port >> 8},{bound.Port & 0xFF})."));
    }

    private async Task ExtendedPassiveAsync(FtpCommand command)
    {
        if (command.Argument.Equals("ALL", StringComparison.OrdinalIgnoreCase))
        {
            _epsvAll = true;
            await ReplyAsync(200, "EPSV ALL accepted.");
            return;
        }

        await PassiveAsync(extended: true);
    }

    private async Task PortAsync(FtpCommand command)
    {
        var numbers = command.Argument.Split(',');
        if (numbers.Length != 6 || !numbers.All(n => byte.TryParse(n.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out _)))
        {
            await ReplyAsync(501, "PORT needs h1,h2,h3,h4,p1,p2.");
            return;
        }

        var bytes = numbers.Select(n => byte.Parse(n.Trim(), CultureInfo.InvariantCulture)).ToArray();
        await ActiveAsync(new IPEndPoint(new IPAddress(bytes[..4]), (bytes[4] << 8) | bytes[5]));
    }

    private async Task ExtendedPortAsync(FtpCommand command)
    {
        // RFC 2428: <d><af><d><address><d><port><d>, the delimiter being the first character.
        var argument = command.Argument;
        var parts = argument.Length > 1 ? argument.Split(argument[0]) : [];
        if (parts.Length != 5 || !IPAddress.TryParse(parts[2], out var address)
            || !int.TryParse(parts[3], NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > IPEndPoint.MaxPort)
        {
            await ReplyAsync(501, "EPRT needs |af|address|port|.");
            return;
        }

        await ActiveAsync(new IPEndPoint(address, port));
    }

    private async Task ActiveAsync(IPEndPoint target)
    {
        if (_epsvAll)
        {
            await ReplyAsync(503, "Only EPSV is allowed after EPSV ALL.");
        }
        else if (!FtpDataChannel.IsAllowedActiveTarget(target, _peer))
        {
            // No FTP bounce: only back to the client itself, never to a privileged port.
            await ReplyAsync(504, "Active mode connects only to your own address, on a port of 1024 or more.");
        }
        else
        {
            _data.SetActive(target);
            await ReplyAsync(200, "PORT command successful.");
        }
    }

    private async Task ListAsync(FtpCommand command, FtpListKind kind)
    {
        var path = Resolve(StripListOptions(command.Argument));
        var entry = _store!.Stat(path);
        if (entry is null || (kind == FtpListKind.Facts && !entry.IsDirectory))
        {
            await ReplyAsync(550, entry is null ? "No such file or directory." : "MLSD lists directories; use MLST for a file.");
            return;
        }

        var entries = entry.IsDirectory ? _store.List(path) : [entry];
        var now = DateTime.UtcNow;
        var text = new StringBuilder();
        foreach (var listed in entries)
        {
            var e = listed with { Name = PrintableText.Escaped(listed.Name) };
            text.Append(kind switch
            {
                FtpListKind.Long => FtpListing.ListLine(e, now),
                FtpListKind.Facts => FtpListing.FactsLine(e, !_readOnly),
                _ => e.Name,
            }).Append("\r\n");
        }

        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        await StartTransferAsync($"{command.Name} {path}", Transmit, "Here comes the directory listing.", async (data, transfer, cancellationToken) =>
        {
            await data.SendAsync(bytes, cancellationToken);
            transfer.Moved(bytes.Length);
            return (226, "Directory send OK.");
        });
    }

    private async Task RetrieveAsync(FtpCommand command)
    {
        var path = Resolve(command.Argument);
        var offset = _restOffset;
        _restOffset = 0;
        if (_store!.Stat(path) is not { IsDirectory: false } entry)
        {
            await ReplyAsync(550, "No such file.");
            return;
        }

        if (offset > entry.Size)
        {
            await ReplyAsync(554, $"Cannot restart at {offset}: past the end of the file ({entry.Size} bytes).");
            return;
        }

        if (!_data.IsReady)
        {
            await ReplyAsync(425, "Use PASV, EPSV, PORT or EPRT first.");
            return;
        }

        FileStream file;
        try
        {
            // Opened before the 150, so a busy or vanished file gets a clean answer; closed by the transfer.
            file = _store.OpenRead(path, offset);
        }
        catch (NotARegularFileException)
        {
            await ReplyAsync(550, "Not a regular file: only files can be transferred.");
            return;
        }
        catch (IOException e) when (e is not FileNotFoundException)
        {
            await ReplyAsync(450, "File busy; try again later.");
            return;
        }

        var binary = _binary;
        await StartTransferAsync($"RETR {path}", Transmit,
            $"Opening {(binary ? "BINARY" : "ASCII")} mode data connection for {entry.Name} ({entry.Size} bytes).",
            async (data, transfer, cancellationToken) =>
            {
                await using (file)
                {
                    if (binary)
                    {
                        // sendfile(2) from our own open file, from the REST offset: no copy through user space.
                        var sent = file.Length - offset;
                        await data.SendFileAsync(file, offset, cancellationToken);
                        transfer.Moved(sent);
                        return (226, "Transfer complete.");
                    }

                    var buffer = new byte[BufferBytes];
                    var converted = new byte[BufferBytes * 2];
                    byte last = 0;
                    int read;
                    while ((read = await file.ReadAsync(buffer, cancellationToken)) > 0)
                    {
                        var count = ToNetworkLineEnds(buffer.AsSpan(0, read), converted, ref last);
                        await data.SendAsync(converted.AsMemory(0, count), cancellationToken);
                        transfer.Moved(count);
                    }

                    return (226, "Transfer complete.");
                }
            },
            file);
    }

    private async Task StoreAsync(FtpCommand command, FtpUploadMode mode) => await StoreAsync(Resolve(command.Argument), mode, null);

    private async Task StoreUniqueAsync()
    {
        var name = $"upload-{DateTime.UtcNow:yyyyMMddHHmmss}-{Random.Shared.Next(0x100000):x5}";
        await StoreAsync(Resolve(name), FtpUploadMode.Replace, $"FILE: {name}");
    }

    private async Task StoreAsync(string path, FtpUploadMode mode, string? preliminary)
    {
        var offset = mode == FtpUploadMode.Replace ? _restOffset : 0;
        _restOffset = 0;
        if (offset > 0 && _options.AtomicUploads)
        {
            // Atomic uploads never keep a partial file, so there is nothing to resume (proftpd's HiddenStores).
            await ReplyAsync(550, "Resuming uploads is off on this server (AtomicUploads): send the whole file.");
            return;
        }

        if (_store!.MapPath(path) is not { } physical || Directory.Exists(physical) || _store.Stat(FtpPath.Parent(path)) is not { IsDirectory: true })
        {
            await ReplyAsync(553, "Cannot store there.");
            return;
        }

        if (RegularFile.IsSpecial(physical))
        {
            // A FIFO or a device is neither written into nor replaced by an upload (an atomic one would rename over it).
            await ReplyAsync(550, "Not a regular file: only files can be written.");
            return;
        }

        if (offset > 0 && offset > (_store.Stat(path)?.Size ?? 0))
        {
            // Resuming continues what is there; past the end would leave a hole, near 2^63 a file no disk can hold.
            await ReplyAsync(554, $"Cannot restart at {offset}: past the end of the file.");
            return;
        }

        var binary = _binary;
        var store = _store;
        var limit = _options.MaxUploadBytes;
        var timeout = _options.DataTimeout;
        await StartTransferAsync($"{(mode == FtpUploadMode.Append ? "APPE" : "STOR")} {path}", Receive, preliminary ?? "Ok to send data.",
            async (data, transfer, cancellationToken) =>
            {
                FtpUpload opened;
                try
                {
                    opened = store.BeginUpload(path, mode, offset, _options.AtomicUploads);
                }
                catch (NotARegularFileException)
                {
                    return (550, "Not a regular file: only files can be written.");
                }
                catch (ArgumentOutOfRangeException)
                {
                    return (554, $"Cannot restart at {offset}: past the end of the file.");
                }
                catch (IOException e) when (e is not FileNotFoundException and not DirectoryNotFoundException && !IsDiskFull(e))
                {
                    return (450, "File busy (being read or written); try again later.");
                }

                await using var upload = opened;
                using var receiver = data.Receiver(BufferBytes, timeout, cancellationToken);
                var buffer = new byte[BufferBytes];
                var pendingCarriageReturn = false;
                var total = upload.StartLength; // the limit is on the file's size, so a REST or an append counts what is there
                if (limit > 0 && total > limit)
                {
                    await upload.DiscardAsync();
                    return (552, $"The file would be over the limit of {limit} bytes; nothing written.");
                }

                int read;
                while ((read = await receiver.ReceiveAsync(buffer)) > 0)
                {
                    if (!binary && pendingCarriageReturn && buffer[0] != (byte)'\n')
                    {
                        // A CR that ended the last chunk was not part of a CRLF: it is data.
                        upload.Write("\r"u8);
                        pendingCarriageReturn = false;
                    }

                    var count = binary ? read : ToLocalLineEnds(buffer.AsSpan(0, read), ref pendingCarriageReturn);
                    total += count;
                    if (limit > 0 && total > limit)
                    {
                        await upload.DiscardAsync();
                        return (552, $"Upload over the limit of {limit} bytes; discarded.");
                    }

                    try
                    {
                        upload.Write(buffer.AsSpan(0, count));
                    }
                    catch (IOException e) when (IsDiskFull(e))
                    {
                        await upload.DiscardAsync();
                        return (452, "Insufficient storage space; upload discarded.");
                    }

                    transfer.Moved(read);
                }

                if (data.EndedWithoutCloseNotify)
                {
                    // TLS without close_notify: the connection was cut, not closed, so the file may be short.
                    await upload.DiscardAsync();
                    return (426, "The data connection ended without TLS close_notify: the upload may be cut short and was discarded.");
                }

                if (pendingCarriageReturn)
                {
                    upload.Write("\r"u8);
                }

                try
                {
                    await upload.CommitAsync();
                }
                catch (IOException e) when (IsDiskFull(e))
                {
                    await upload.DiscardAsync();
                    return (452, "Insufficient storage space; upload discarded.");
                }

                return (226, "Transfer complete.");
            });
    }

    private async Task StartTransferAsync(string description, string direction, string preliminary, TransferBody body, FileStream? resource = null)
    {
        if (!_data.IsReady)
        {
            if (resource is not null)
            {
                await resource.DisposeAsync();
            }

            await ReplyAsync(425, "Use PASV, EPSV, PORT or EPRT first.");
            return;
        }

        if (ClearDataRefusal() is { } refusal)
        {
            if (resource is not null)
            {
                await resource.DisposeAsync();
            }

            await ReplyAsync(521, refusal);
            return;
        }

        await ReplyAsync(150, preliminary);
        var transfer = new Transfer(description, direction);
        _transfer = transfer;
        transfer.Task = Task.Run(() => RunTransferAsync(transfer, body, resource));
    }

    private async Task RunTransferAsync(Transfer transfer, TransferBody body, FileStream? resource)
    {
        var cancel = transfer.Cancel.Token;
        FtpDataConnection data;
        try
        {
            data = await ProtectAsync(await _data.OpenAsync(_peer, _options.DataTimeout, cancel), cancel);
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or InvalidOperationException
                                   or System.Security.Authentication.AuthenticationException)
        {
            if (resource is not null)
            {
                await resource.DisposeAsync();
            }

            await ReplyQuietlyAsync(425, e is System.Security.Authentication.AuthenticationException
                ? "Can't open data connection: its TLS handshake failed."
                : "Can't open data connection.");
            return;
        }

        (int Code, string Text) result;
        using var watching = new CancellationTokenSource();
        var watch = transfer.Direction == Transmit ? WatchForStallAsync(data, transfer, _options.DataTimeout, watching.Token) : Task.CompletedTask;
        try
        {
            using var abort = cancel.Register(static d => ((FtpDataConnection)d!).Abort(), data);
            result = await body(data, transfer, cancel);
            try
            {
                await data.CloseAsync(_options.DataTimeout);
            }
            catch (Exception e) when (transfer.Direction == Receive && e is IOException or SocketException or ObjectDisposedException or TimeoutException)
            {
                // An upload's client may close as soon as it has sent everything (curl does, right after its
                // close_notify): our goodbye then meets a closed socket. The upload was complete and is kept.
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException or ObjectDisposedException or TimeoutException)
        {
            result = transfer.Stalled
                ? (426, $"Data connection stalled: nothing taken for {_options.DataTimeout.TotalSeconds:0.#} s; transfer aborted.")
                : (426, cancel.IsCancellationRequested ? "Transfer aborted." : "Connection closed; transfer aborted.");
        }
        catch (UnauthorizedAccessException)
        {
            result = (550, "Permission denied.");
        }
        catch (Exception e)
        {
            // Anything else is our fault, not the client's: it still gets its final reply, and the host logs it.
            _activity?.Faulted(transfer.Direction, e);
            result = (451, "Requested action aborted: local error in processing.");
        }
        finally
        {
            await watching.CancelAsync();
            await watch;
            await data.DisposeAsync();
            if (resource is not null)
            {
                await resource.DisposeAsync(); // the body's own using has closed it already, unless it never ran
            }
        }

        _activity?.TransferEnded(transfer.Direction, transfer.Bytes, result.Code < 400 ? ProtocolOutcomes.Ok : result.Code.ToString(CultureInfo.InvariantCulture));
        transfer.Answering = true;
        await ReplyQuietlyAsync(result.Code, result.Text);
    }

    /// <summary>
    /// Ends a download (or listing) the client has stopped taking: no byte acknowledged for the data timeout
    /// (vsftpd's data_connection_timeout). A send blocked on a full socket buffer — one sendfile may run for
    /// minutes — is otherwise cancelled only by ABOR, and the open file would stay open with it.
    /// </summary>
    private static async Task WatchForStallAsync(FtpDataConnection data, Transfer transfer, TimeSpan timeout, CancellationToken done)
    {
        using var ticks = new PeriodicTimer(TimeSpan.FromMilliseconds(Math.Clamp(timeout.TotalMilliseconds / 4, 50, 1000)));
        var last = long.MinValue;
        var lastMoved = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            while (await ticks.WaitForNextTickAsync(done))
            {
                // Acknowledged bytes where the kernel tells them; otherwise the bytes handed to completed sends.
                var acknowledged = data.AcknowledgedBytes();
                var progress = acknowledged >= 0 ? acknowledged : transfer.Bytes;
                if (progress != last)
                {
                    last = progress;
                    lastMoved = System.Diagnostics.Stopwatch.GetTimestamp();
                }
                else if (System.Diagnostics.Stopwatch.GetElapsedTime(lastMoved) >= timeout)
                {
                    transfer.Stalled = true;
                    await transfer.Cancel.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // The transfer ended first.
        }
    }

    /// <summary>A reply for a connection that may be gone already (a transfer's end, an idle timeout).</summary>
    public async Task ReplyQuietlyAsync(int code, string text)
    {
        try
        {
            await ReplyAsync(code, text);
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException or IOException
                                   or Microsoft.AspNetCore.Connections.ConnectionResetException or Microsoft.AspNetCore.Connections.ConnectionAbortedException)
        {
            // Nobody is left to tell.
        }
    }

    /// <summary>TYPE A out: LF becomes CRLF (a CR already before it is kept).</summary>
    private static int ToNetworkLineEnds(ReadOnlySpan<byte> input, Span<byte> output, ref byte last)
    {
        var count = 0;
        foreach (var b in input)
        {
            if (b == (byte)'\n' && last != (byte)'\r')
            {
                output[count++] = (byte)'\r';
            }

            output[count++] = b;
            last = b;
        }

        return count;
    }

    /// <summary>
    /// TYPE A in: CRLF becomes LF, in place; a CR at the end of a chunk waits for the next one. The caller
    /// writes out a waiting CR the next chunk does not complete, so output never overtakes input here.
    /// </summary>
    private static int ToLocalLineEnds(Span<byte> buffer, ref bool pendingCarriageReturn)
    {
        var count = 0;
        foreach (var b in buffer)
        {
            if (pendingCarriageReturn && b != (byte)'\n')
            {
                buffer[count++] = (byte)'\r';
            }

            pendingCarriageReturn = b == (byte)'\r';
            if (!pendingCarriageReturn)
            {
                buffer[count++] = b;
            }
        }

        return count;
    }

    /// <summary>LIST and NLST arguments may start with ls options (-a, -la): they are not paths.</summary>
    private static string StripListOptions(string argument)
    {
        while (argument.StartsWith('-'))
        {
            var space = argument.IndexOf(' ', StringComparison.Ordinal);
            argument = space < 0 ? "" : argument[(space + 1)..].TrimStart();
        }

        return argument;
    }
}
