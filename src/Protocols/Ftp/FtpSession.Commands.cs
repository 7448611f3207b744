using System.Globalization;

namespace Gateway.Protocols.Ftp;

/// <summary>Login, information and file commands: everything that answers on the control connection alone.</summary>
internal sealed partial class FtpSession
{
    private async Task UserAsync(FtpCommand command)
    {
        LogOut();
        if (NeedsTlsFirst(command.Argument))
        {
            await ReplyAsync(530, "TLS required: send AUTH TLS first.");
            return;
        }

        _pendingUser = command.Argument;
        // Always 331, whether or not the name exists: no probing for user names.
        await ReplyAsync(331, _authenticator.IsAnonymous(command.Argument) ? "Anonymous login ok, send your email address as password." : "Password required.");
    }

    private async Task PassAsync(FtpCommand command)
    {
        if (_pendingUser is null)
        {
            await ReplyAsync(503, "Log in with USER first.");
            return;
        }

        var name = _pendingUser;
        _pendingUser = null;
        // The wait for a verification, and the delay after a failure, end with the connection; a close
        // request (drain, admin) ends them with 421.
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(_connectionClosed, _closeRequested);
        try
        {
            await LogInAsync(name, command.Argument, ended.Token);
        }
        catch (OperationCanceledException) when (_closeRequested.IsCancellationRequested && !_connectionClosed.IsCancellationRequested)
        {
            await ReplyAsync(421, "Service closing: the server is stopping or an administrator closed this connection.");
            IsClosing = true;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // A bug in the verification, not a wrong password: the host logs it, the client hears 421.
            _activity?.Faulted("pass", e);
            await ReplyAsync(421, "Login could not be checked; try again later.");
            IsClosing = true;
        }
    }

    private async Task LogInAsync(string name, string password, CancellationToken cancellationToken)
    {
        var login = await _authenticator.LogInAsync(_peer, name, password, cancellationToken);
        _activity?.LoginEnded(login.OutcomeName, login.CheckName);
        switch (login)
        {
            case { Outcome: FtpLoginOutcome.Ok, User: { } user }:
                Enter(user);
                await ReplyAsync(230, $"User {name} logged in{(_readOnly ? " (read-only)" : "")}.");
                return;
            case { Outcome: FtpLoginOutcome.QueueFull or FtpLoginOutcome.QueueTimeout }:
                // The server is busy, not the password wrong: 421, which clients take as "try again later".
                await ReplyAsync(421, "Too many logins in progress; try again later.");
                IsClosing = true;
                return;
        }

        // Never reset on this connection, by any login: its failures are its guesses.
        _loginFailures++;
        await Task.Delay(_options.LoginFailureDelay, cancellationToken); // slows guessing; the same delay whatever was wrong
        if (_loginFailures >= _options.MaxLoginFailuresPerConnection)
        {
            await ReplyAsync(421, "Too many failed logins; closing the connection.");
            IsClosing = true;
            return;
        }

        await ReplyAsync(530, "Login incorrect.");
    }

    private void Enter(FtpUser user)
    {
        _readOnly = user.ReadOnly;
        _userRequiresTls = user.RequireTls;
        // A home is a directory under the root; ".." in its name cannot lift it out.
        var root = Path.Join(_options.Root, FtpPath.Normalize(user.Home ?? user.Name));
        _store = new FtpFileStore(root);
        _userName = user.Name;
        _cwd = FtpPath.Root;
    }

    private void LogOut()
    {
        _store = null;
        _userName = null;
        _readOnly = false;
        _userRequiresTls = false;
        _cwd = FtpPath.Root;
    }

    private async Task QuitAsync()
    {
        await ReplyAsync(221, "Goodbye.");
        IsClosing = true;
    }

    private async Task ReinitializeAsync()
    {
        LogOut();
        _pendingUser = null;
        _binary = false;
        await ReplyAsync(220, "Ready for a new user.");
    }

    private Task FeaturesAsync() => ReplyMultilineAsync(211, "Features:",
    [
        .. _options.Tls is null ? (string[])[] : ["AUTH TLS", "AUTH SSL", "PBSZ", "PROT"],
        "EPRT", "EPSV", "HOST", "MDTM", "MFMT", "MLST type*;size*;modify*;perm*;unique*;", "PASV", "REST STREAM", "SIZE", "TVFS", "UTF8",
    ], "End");

    private Task OptionsAsync(FtpCommand command)
    {
        var option = command.Argument.Trim();
        if (option.StartsWith("UTF8", StringComparison.OrdinalIgnoreCase))
        {
            return ReplyAsync(200, "Always in UTF8 mode.");
        }

        if (option.StartsWith("MLST", StringComparison.OrdinalIgnoreCase))
        {
            return ReplyAsync(200, "MLST OPTS type;size;modify;perm;unique;");
        }

        return ReplyAsync(501, $"Option not understood: {option}");
    }

    private Task HelpAsync() => ReplyMultilineAsync(214, "The following commands are recognized:",
        Commands.Keys.Select(v => v.ToString().ToUpperInvariant()).Order().Chunk(10).Select(c => string.Join(' ', c)), "Help OK.");

    private async Task StatusAsync(FtpCommand command)
    {
        if (!command.HasArgument)
        {
            await ReplyMultilineAsync(211, "Gateway FTP server status:",
            [
                $"Connected from {_peer}",
                $"Logged in as {_userName}{(_readOnly ? " (read-only)" : "")}",
                $"TYPE: {(_binary ? "BINARY" : "ASCII")}, MODE: Stream, STRUCTURE: File",
                "No data connection",
            ], "End of status");
            return;
        }

        var path = Resolve(StripListOptions(command.Argument));
        var entry = _store!.Stat(path) ?? throw new FileNotFoundException(path);
        var lines = entry.IsDirectory ? _store.List(path).Select(e => FtpListing.ListLine(e, DateTime.UtcNow)) : [FtpListing.ListLine(entry, DateTime.UtcNow)];
        await ReplyMultilineAsync(213, $"Status of {path}:", lines, "End of status");
    }

    private async Task SiteAsync(FtpCommand command)
    {
        var parts = command.Argument.Split(' ', 2);
        switch (parts[0].ToUpperInvariant())
        {
            case "HELP":
                await ReplyAsync(214, "SITE commands: CHMOD, HELP, UTIME.");
                break;
            case "CHMOD" when parts.Length == 2:
                await SiteChmodAsync(parts[1]);
                break;
            case "UTIME" when parts.Length == 2:
                await SiteUtimeAsync(parts[1]);
                break;
            default:
                await ReplyAsync(500, $"SITE {parts[0]} is not understood.");
                break;
        }
    }

    // "CHMOD <octal> <path>", as lftp's mirror -R sends: permission bits only (never setuid, setgid, sticky).
    private async Task SiteChmodAsync(string argument)
    {
        var parts = argument.Split(' ', 2);
        if (parts.Length != 2 || !TryParseOctal(parts[0], out var mode))
        {
            await ReplyAsync(501, "SITE CHMOD needs an octal mode and a path.");
            return;
        }

        if (_readOnly)
        {
            await ReplyAsync(550, "Permission denied: this account is read-only.");
            return;
        }

        var path = Resolve(parts[1]);
        var physical = _store!.Stat(path) is not null ? _store.MapPath(path) : null;
        if (physical is null)
        {
            await ReplyAsync(550, "No such file or directory.");
            return;
        }

        if (OperatingSystem.IsWindows())
        {
            await ReplyAsync(502, "SITE CHMOD is not supported on this platform.");
            return;
        }

        File.SetUnixFileMode(physical, (UnixFileMode)(mode & 0b111_111_111));
        await ReplyAsync(200, "SITE CHMOD command ok.");
    }

    private static bool TryParseOctal(string text, out int value)
    {
        value = 0;
        if (text.Length is 0 or > 4)
        {
            return false;
        }

        foreach (var c in text)
        {
            if (c is < '0' or > '7')
            {
                return false;
            }

            value = (value * 8) + (c - '0');
        }

        return true;
    }

    // Two forms are in use: "UTIME <time> <path>" (lftp, some clients) and "UTIME <path> <atime> <mtime> <ctime> UTC" (proftpd).
    private async Task SiteUtimeAsync(string argument)
    {
        if (_readOnly)
        {
            await ReplyAsync(550, "Permission denied: this account is read-only.");
            return;
        }

        var words = argument.Split(' ');
        string? path = null;
        DateTime time = default;
        if (words.Length >= 2 && FtpListing.TryParseTimestamp(words[0], out time))
        {
            path = string.Join(' ', words[1..]);
        }
        else if (words.Length >= 5 && words[^1].Equals("UTC", StringComparison.OrdinalIgnoreCase) && FtpListing.TryParseTimestamp(words[^3], out time))
        {
            path = string.Join(' ', words[..^4]);
        }

        if (path is null)
        {
            await ReplyAsync(501, "SITE UTIME needs a time YYYYMMDDHHMMSS and a path.");
            return;
        }

        _store!.SetModified(Resolve(path), time);
        await ReplyAsync(200, "Modification time set.");
    }

    private async Task TypeAsync(FtpCommand command)
    {
        switch (command.Argument.Split(' ')[0].ToUpperInvariant())
        {
            case "A":
                _binary = false;
                await ReplyAsync(200, "Type set to A.");
                break;
            case "I" or "L":
                _binary = true;
                await ReplyAsync(200, "Type set to I.");
                break;
            default:
                await ReplyAsync(504, "Only types A and I are supported.");
                break;
        }
    }

    private async Task ChangeDirectoryAsync(string argument)
    {
        var path = Resolve(argument);
        if (_store!.Stat(path) is { IsDirectory: true })
        {
            _cwd = path;
            await ReplyAsync(250, $"Directory changed to {path}.");
        }
        else
        {
            await ReplyAsync(550, "No such directory.");
        }
    }

    private async Task MakeDirectoryAsync(FtpCommand command)
    {
        var path = Resolve(command.Argument);
        _store!.MakeDirectory(path);
        await ReplyAsync(257, $"{FtpPath.Quote(path)} created.");
    }

    private async Task RemoveDirectoryAsync(FtpCommand command)
    {
        _store!.RemoveDirectory(Resolve(command.Argument));
        await ReplyAsync(250, "Directory removed.");
    }

    private async Task DeleteAsync(FtpCommand command)
    {
        _store!.Delete(Resolve(command.Argument));
        await ReplyAsync(250, "File deleted.");
    }

    private async Task RenameFromAsync(FtpCommand command)
    {
        var path = Resolve(command.Argument);
        if (_store!.Stat(path) is null)
        {
            await ReplyAsync(550, "No such file or directory.");
            return;
        }

        _renameFrom = path;
        await ReplyAsync(350, "Ready for RNTO.");
    }

    private async Task RenameToAsync(FtpCommand command)
    {
        if (_renameFrom is not { } from)
        {
            await ReplyAsync(503, "RNFR first.");
            return;
        }

        _renameFrom = null;
        _store!.Rename(from, Resolve(command.Argument));
        await ReplyAsync(250, "Renamed.");
    }

    private async Task SizeAsync(FtpCommand command)
    {
        if (_store!.Stat(Resolve(command.Argument)) is { IsDirectory: false } entry)
        {
            await ReplyAsync(213, entry.Size.ToString(CultureInfo.InvariantCulture));
        }
        else
        {
            await ReplyAsync(550, "Not a plain file.");
        }
    }

    private async Task ModifiedTimeAsync(FtpCommand command)
    {
        if (_store!.Stat(Resolve(command.Argument)) is { } entry)
        {
            await ReplyAsync(213, FtpListing.Timestamp(entry.ModifiedUtc));
        }
        else
        {
            await ReplyAsync(550, "No such file or directory.");
        }
    }

    private async Task SetModifiedTimeAsync(FtpCommand command)
    {
        var parts = command.Argument.Split(' ', 2);
        if (parts.Length != 2 || !FtpListing.TryParseTimestamp(parts[0], out var time))
        {
            await ReplyAsync(501, "MFMT needs YYYYMMDDHHMMSS and a path.");
            return;
        }

        var path = Resolve(parts[1]);
        _store!.SetModified(path, time);
        await ReplyAsync(213, $"Modify={FtpListing.Timestamp(time)}; {parts[1]}");
    }

    private async Task RestartAsync(FtpCommand command)
    {
        if (!long.TryParse(command.Argument, NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
        {
            await ReplyAsync(501, "REST needs a byte offset.");
            return;
        }

        _restOffset = offset;
        await ReplyAsync(350, $"Restarting at {offset}. Send STOR or RETR.");
    }

    private async Task MachineListOneAsync(FtpCommand command)
    {
        var path = Resolve(command.Argument);
        var entry = _store!.Stat(path) ?? throw new FileNotFoundException(path);
        await ReplyMultilineAsync(250, $"Listing {path}", [FtpListing.FactsLine(entry with { Name = path }, !_readOnly)], "End");
    }
}
