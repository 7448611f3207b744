using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using Gateway.Protocols.Framing;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// One FTP control connection's state and its commands (one method per verb, FubarDev's habit). The
/// dispatcher gates login, arguments and write permission in one place. Replies from the control loop and
/// from a running transfer are serialised by one lock, so lines never interleave.
/// </summary>
internal sealed partial class FtpSession : IAsyncDisposable
{
    private static readonly Dictionary<FtpVerb, CommandSpec> Commands = CreateCommands();

    /// <summary>NAME_MAX of Linux file systems: the longest name, in bytes, a directory entry may have.</summary>
    private const int MaxNameBytes = 255;

    private readonly FtpOptions _options;
    private readonly FtpAuthenticator _authenticator;
    private readonly FtpPassiveListeners _passiveListeners;
    private readonly IProtocolActivityFeature? _activity;
    private PipeWriter _output; // the transport's, or TLS's after AUTH TLS
    private readonly SemaphoreSlim _replyLock = new(1, 1);
    private readonly ConnectionContext _connection;
    private readonly TimeSpan _replyTimeout;
    private CancellationTokenSource _replyDeadline = new();
    private readonly FtpDataChannel _data = new();
    private readonly IPAddress _peer;
    private readonly IPAddress _local;
    private readonly CancellationToken _connectionClosed;
    private readonly CancellationToken _closeRequested;

    private string? _pendingUser;
    private string? _userName;
    private bool _readOnly;
    private FtpFileStore? _store;
    private string _cwd = FtpPath.Root;
    private bool _binary;
    private long _restOffset;
    private string? _renameFrom;
    private bool _epsvAll;
    private int _loginFailures;
    private int _lastReplyCode;

    /// <param name="replyTimeout">How long a reply may wait for the client to take it (the idle timeout); zero: no limit.</param>
    public FtpSession(ConnectionContext connection, FtpOptions options, FtpAuthenticator authenticator, FtpPassiveListeners passiveListeners, TimeSpan replyTimeout)
    {
        _connection = connection;
        _replyTimeout = replyTimeout;
        _options = options;
        _authenticator = authenticator;
        _passiveListeners = passiveListeners;
        _connectionClosed = connection.ConnectionClosed;
        _closeRequested = ConnectionLifetime.CloseRequested(connection);
        _activity = connection.Features.Get<IProtocolActivityFeature>();
        _output = connection.Transport.Output;
        _peer = FtpDataChannel.Canonical((connection.RemoteEndPoint as IPEndPoint)?.Address ?? IPAddress.Loopback);
        _local = FtpDataChannel.Canonical((connection.LocalEndPoint as IPEndPoint)?.Address ?? IPAddress.Loopback);
        IsImplicitTls = connection.Features.Get<FtpImplicitTlsFeature>() is not null;
        _protectData = IsImplicitTls; // implicit FTPS: data connections are TLS unless PROT C says otherwise
        if (_activity is not null)
        {
            _activity.Details = Describe;
        }
    }

    /// <summary>What the admin API shows for this connection; called only when someone lists it.</summary>
    private Dictionary<string, string?> Describe()
    {
        var transfer = _transfer is { Task.IsCompleted: false } running ? $"{running.Description} ({running.Bytes} bytes so far)" : null;
        var tls = _controlTls is { } secure ? $"{secure.SslProtocol}{(IsImplicitTls ? " (implicit)" : "")}, PROT {(_protectData ? "P" : "C")}" : null;
        return new() { ["user"] = _userName, ["cwd"] = _cwd, ["transfer"] = transfer, ["tls"] = tls };
    }

    /// <summary>Set by QUIT, or by too many failed logins: the handler closes the connection.</summary>
    public bool IsClosing { get; private set; }

    private bool LoggedIn => _store is not null;

    private delegate Task CommandHandler(FtpSession session, FtpCommand command);

    /// <param name="Names">The argument names something the command creates (a file, a directory, a new name).</param>
    private sealed record CommandSpec(CommandHandler Run, bool NeedsLogin = true, bool NeedsArgument = false, bool Writes = false, bool Names = false);

    public async Task ExecuteAsync(FtpCommand command)
    {
        var started = Stopwatch.GetTimestamp();
        if (_transfer is { } running && !running.Task.IsCompleted)
        {
            if (await HandleDuringTransferAsync(command, running))
            {
                Report(command, started);
                return;
            }
        }

        if (command.Verb is not (FtpVerb.Rest or FtpVerb.Retr or FtpVerb.Stor or FtpVerb.Appe))
        {
            _restOffset = 0; // REST applies to the command right after it only
        }

        if (command.Verb != FtpVerb.Rnto && command.Verb != FtpVerb.Rnfr)
        {
            _renameFrom = null;
        }

        if (!Commands.TryGetValue(command.Verb, out var spec))
        {
            // The verb comes back at most 32 characters long (a line may be 4 KiB); control characters never
            // come back (FtpReplies).
            var name = command.Name.Length <= 32 ? command.Name : command.Name[..32] + "...";
            await ReplyAsync(500, $"'{name}': command not understood.");
        }
        else if (spec.NeedsLogin && !LoggedIn)
        {
            await ReplyAsync(530, "Please log in with USER and PASS.");
        }
        else if (spec.NeedsArgument && !command.HasArgument)
        {
            await ReplyAsync(501, $"{command.Name} needs an argument.");
        }
        else if (spec.Writes && _readOnly)
        {
            await ReplyAsync(550, "Permission denied: this account is read-only.");
        }
        else if (spec.Names && PrintableText.HasControlCharacters(command.Argument))
        {
            // A CR in a name would forge lines in a raw LIST, and an escape sequence would reach terminals.
            await ReplyAsync(553, "File name not allowed: it has control characters.");
        }
        else if (spec.Names && FtpPath.Segments(FtpPath.Normalize(command.Argument)).Any(s => System.Text.Encoding.UTF8.GetByteCount(s) > MaxNameBytes))
        {
            // Refused before a 150: a file system takes at most 255 bytes a name, and would only say so at the end.
            await ReplyAsync(553, $"File name too long: at most {MaxNameBytes} bytes a name.");
        }
        else
        {
            try
            {
                // Most commands touch the file system, whose calls may block (a slow or remote disk): they run on
                // the thread pool, never on the I/O thread that read the line (IoThread).
                await IoThread.LeaveAsync();
                await spec.Run(this, command);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                await ReplyFileErrorAsync(e);
            }
            catch (Exception e) when (e is not OperationCanceledException and not Microsoft.AspNetCore.Connections.ConnectionResetException
                                       and not Microsoft.AspNetCore.Connections.ConnectionAbortedException and not ObjectDisposedException)
            {
                // Our fault, not the client's: it still gets an answer and keeps its session; the host logs the fault.
                _activity?.Faulted(command.Verb.ToString().ToLowerInvariant(), e);
                await ReplyAsync(451, "Requested action aborted: local error in processing.");
            }
        }

        Report(command, started);
    }

    /// <summary>Writes and sends one reply; safe to call from a transfer while the control loop runs.</summary>
    public Task ReplyAsync(int code, string text) => SendReplyAsync(code, output => FtpReplies.Write(output, code, text));

    private Task ReplyMultilineAsync(int code, string first, IEnumerable<string> lines, string last) =>
        SendReplyAsync(code, output => FtpReplies.WriteMultiline(output, code, first, lines, last));

    // One lock for every reply, so the control loop's and a transfer's lines never interleave.
    private async Task SendReplyAsync(int code, Action<PipeWriter> write)
    {
        await _replyLock.WaitAsync();
        try
        {
            write(_output);
            _lastReplyCode = code;
            await FlushRepliesAsync();
        }
        finally
        {
            _replyLock.Release();
        }
    }

    /// <summary>
    /// Sends what was written, waiting for a client that reads slowly, but not for one that stopped reading: a
    /// client can pipeline commands and never read a reply, and the session would wait in this flush for ever
    /// (the idle timer runs only while a command is awaited). After the idle timeout the connection is aborted.
    /// </summary>
    private async Task FlushRepliesAsync()
    {
        if (_replyTimeout <= TimeSpan.Zero)
        {
            await _output.FlushAsync();
            return;
        }

        _replyDeadline.CancelAfter(_replyTimeout);
        try
        {
            await _output.FlushAsync(_replyDeadline.Token);
        }
        catch (OperationCanceledException) when (_replyDeadline.IsCancellationRequested)
        {
            const string Reason = "the client took no reply for the idle timeout";
            _connection.Abort(new ConnectionAbortedException(Reason));
            throw new ConnectionAbortedException(Reason);
        }
        finally
        {
            if (!_replyDeadline.TryReset())
            {
                _replyDeadline.Dispose();
                _replyDeadline = new CancellationTokenSource();
            }
        }
    }

    // The exception's own text never reaches the client: it names paths on the server's disk.
    private Task ReplyFileErrorAsync(Exception error) => error switch
    {
        FileNotFoundException or DirectoryNotFoundException => ReplyAsync(550, "No such file or directory."),
        UnauthorizedAccessException => ReplyAsync(550, "Permission denied."),
        PathTooLongException => ReplyAsync(553, "File name too long."),
        NotARegularFileException => ReplyAsync(550, "Not a regular file."),
        IOException io when IsDiskFull(io) => ReplyAsync(452, "Insufficient storage space."),
        _ => ReplyAsync(550, "Requested action not taken: the file or directory is unavailable (it may exist already, or be in use)."),
    };

    // ENOSPC (28) and EDQUOT (122) reach .NET as IOException with the errno in HResult's low bits.
    private static bool IsDiskFull(IOException error) => (error.HResult & 0xFFFF) is 28 or 122;

    /// <summary>Answers a control line that could not be read as a command (too long), counted as a protocol error.</summary>
    public async Task RejectLineAsync(int code, string text, string outcome)
    {
        await ReplyAsync(code, text);
        _activity?.MessageHandled("line", outcome, 0);
    }

    private void Report(FtpCommand command, long started)
    {
        var outcome = _lastReplyCode < 400 ? ProtocolOutcomes.Ok : _lastReplyCode.ToString(CultureInfo.InvariantCulture);
        var operation = command.Verb == FtpVerb.Unknown ? "unknown" : command.Verb.ToString().ToLowerInvariant();
        _activity?.MessageHandled(operation, outcome, Stopwatch.GetElapsedTime(started).TotalSeconds);
    }

    private string Resolve(string? argument) => FtpPath.Resolve(_cwd, argument);

    public async ValueTask DisposeAsync()
    {
        await CancelTransferAsync();
        await _data.DisposeAsync();
        await CloseTlsAsync();
        _replyLock.Dispose();
        _replyDeadline.Dispose();
    }

    private static Dictionary<FtpVerb, CommandSpec> CreateCommands() => new()
    {
        [FtpVerb.User] = new((s, c) => s.UserAsync(c), NeedsLogin: false, NeedsArgument: true),
        [FtpVerb.Pass] = new((s, c) => s.PassAsync(c), NeedsLogin: false),
        [FtpVerb.Acct] = new((s, _) => s.ReplyAsync(202, "ACCT not needed."), NeedsLogin: false),
        [FtpVerb.Quit] = new((s, _) => s.QuitAsync(), NeedsLogin: false),
        [FtpVerb.Rein] = new((s, _) => s.ReinitializeAsync(), NeedsLogin: false),
        [FtpVerb.Noop] = new((s, _) => s.ReplyAsync(200, "NOOP ok."), NeedsLogin: false),
        [FtpVerb.Syst] = new((s, _) => s.ReplyAsync(215, "UNIX Type: L8"), NeedsLogin: false),
        [FtpVerb.Feat] = new((s, _) => s.FeaturesAsync(), NeedsLogin: false),
        [FtpVerb.Opts] = new((s, c) => s.OptionsAsync(c), NeedsLogin: false, NeedsArgument: true),
        [FtpVerb.Help] = new((s, _) => s.HelpAsync(), NeedsLogin: false),
        [FtpVerb.Host] = new((s, _) => s.ReplyAsync(220, "Host accepted."), NeedsLogin: false),
        [FtpVerb.Clnt] = new((s, _) => s.ReplyAsync(200, "Noted."), NeedsLogin: false),
        [FtpVerb.Auth] = new((s, c) => s.AuthAsync(c), NeedsLogin: false),
        [FtpVerb.Pbsz] = new((s, _) => s.ProtectionBufferSizeAsync(), NeedsLogin: false),
        [FtpVerb.Prot] = new((s, c) => s.ProtectionLevelAsync(c), NeedsLogin: false, NeedsArgument: true),
        [FtpVerb.Ccc] = new((s, _) => s.ReplyAsync(533, "CCC is refused."), NeedsLogin: false),
        [FtpVerb.Stat] = new((s, c) => s.StatusAsync(c)),
        [FtpVerb.Site] = new((s, c) => s.SiteAsync(c), NeedsArgument: true),
        [FtpVerb.Type] = new((s, c) => s.TypeAsync(c), NeedsArgument: true),
        [FtpVerb.Mode] = new((s, c) => s.ReplyAsync(c.Argument.Equals("S", StringComparison.OrdinalIgnoreCase) ? 200 : 504, "Mode S (stream) only."), NeedsArgument: true),
        [FtpVerb.Stru] = new((s, c) => s.ReplyAsync(c.Argument.Equals("F", StringComparison.OrdinalIgnoreCase) ? 200 : 504, "Structure F (file) only."), NeedsArgument: true),
        [FtpVerb.Allo] = new((s, _) => s.ReplyAsync(202, "No storage allocation necessary.")),
        [FtpVerb.Pwd] = new((s, _) => s.ReplyAsync(257, $"{FtpPath.Quote(s._cwd)} is the current directory.")),
        [FtpVerb.Cwd] = new((s, c) => s.ChangeDirectoryAsync(c.Argument)),
        [FtpVerb.Cdup] = new((s, _) => s.ChangeDirectoryAsync("..")),
        [FtpVerb.Mkd] = new((s, c) => s.MakeDirectoryAsync(c), NeedsArgument: true, Writes: true, Names: true),
        [FtpVerb.Rmd] = new((s, c) => s.RemoveDirectoryAsync(c), NeedsArgument: true, Writes: true),
        [FtpVerb.Dele] = new((s, c) => s.DeleteAsync(c), NeedsArgument: true, Writes: true),
        [FtpVerb.Rnfr] = new((s, c) => s.RenameFromAsync(c), NeedsArgument: true, Writes: true),
        [FtpVerb.Rnto] = new((s, c) => s.RenameToAsync(c), NeedsArgument: true, Writes: true, Names: true),
        [FtpVerb.Size] = new((s, c) => s.SizeAsync(c), NeedsArgument: true),
        [FtpVerb.Mdtm] = new((s, c) => s.ModifiedTimeAsync(c), NeedsArgument: true),
        [FtpVerb.Mfmt] = new((s, c) => s.SetModifiedTimeAsync(c), NeedsArgument: true, Writes: true),
        [FtpVerb.Rest] = new((s, c) => s.RestartAsync(c), NeedsArgument: true),
        [FtpVerb.Mlst] = new((s, c) => s.MachineListOneAsync(c)),
        [FtpVerb.Pasv] = new((s, _) => s.PassiveAsync(extended: false)),
        [FtpVerb.Epsv] = new((s, c) => s.ExtendedPassiveAsync(c)),
        [FtpVerb.Port] = new((s, c) => s.PortAsync(c), NeedsArgument: true),
        [FtpVerb.Eprt] = new((s, c) => s.ExtendedPortAsync(c), NeedsArgument: true),
        [FtpVerb.List] = new((s, c) => s.ListAsync(c, FtpListKind.Long)),
        [FtpVerb.Nlst] = new((s, c) => s.ListAsync(c, FtpListKind.Names)),
        [FtpVerb.Mlsd] = new((s, c) => s.ListAsync(c, FtpListKind.Facts)),
        [FtpVerb.Retr] = new((s, c) => s.RetrieveAsync(c), NeedsArgument: true),
        [FtpVerb.Stor] = new((s, c) => s.StoreAsync(c, FtpUploadMode.Replace), NeedsArgument: true, Writes: true, Names: true),
        [FtpVerb.Appe] = new((s, c) => s.StoreAsync(c, FtpUploadMode.Append), NeedsArgument: true, Writes: true, Names: true),
        [FtpVerb.Stou] = new((s, c) => s.StoreUniqueAsync(), Writes: true),
        [FtpVerb.Abor] = new((s, _) => s.ReplyAsync(226, "No transfer to abort.")),
    };
}
