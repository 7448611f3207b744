using System.Text;
using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

/// <summary>USER/PASS through the real FTP handler on in-memory pipes: replies, the connection's own count, what is reported.</summary>
public sealed class FtpLoginSessionTests : IDisposable
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("gateway-ftp-login-");
    private readonly InMemoryConnection _connection = new();
    private readonly RecordingActivity _activity = new();
    private readonly GatedVerification _gate = new();
    private readonly StreamReader _replies;
    private readonly CancellationTokenSource _timeout = new(Patience);

    public FtpLoginSessionTests()
    {
        _connection.Context.Features.Set<IProtocolActivityFeature>(_activity);
        _replies = new StreamReader(_connection.ClientInput.AsStream(), Encoding.UTF8);
    }

    public void Dispose()
    {
        _replies.Dispose();
        _connection.Dispose();
        _gate.Dispose();
        _timeout.Dispose();
        _root.Delete(recursive: true);
    }

    private FtpOptions Options() => new()
    {
        Root = _root.FullName,
        Users = [new FtpUser("alice", FtpPasswordHasher.Hash("alice-pw", 1000))],
        AllowAnonymous = true,
        LoginFailureDelay = TimeSpan.Zero,
    };

    private Task Start(FtpPasswordVerifier verifier)
    {
        var options = Options();
        var authenticator = new FtpAuthenticator(options, new FtpLoginGuard(options), new FtpLoginCache(TimeSpan.FromMinutes(1)), verifier);
        return _connection.RunAsync(new FtpHandler(options, authenticator, new FtpPassiveListeners(options), new ProtocolLimits { IdleTimeout = TimeSpan.Zero }));
    }

    /// <summary>Starts the session and sends alice's USER and PASS; returns the handler once the 220 and 331 are read.</summary>
    private async Task<Task> StartWithAlicesPassAsync(FtpPasswordVerifier verifier)
    {
        var handler = Start(verifier);
        await SendAsync("USER alice\r\nPASS alice-pw\r\n");
        Assert.Equal(["220", "331"], await RepliesAsync(2));
        return handler;
    }

    private async Task SendAsync(string lines) => await _connection.ClientOutput.WriteAsync(Encoding.UTF8.GetBytes(lines), _timeout.Token);

    private async Task<string> ReplyAsync() => await _replies.ReadLineAsync(_timeout.Token) ?? "(closed)";

    private async Task<string[]> RepliesAsync(int count)
    {
        var replies = new string[count];
        for (var i = 0; i < count; i++)
        {
            replies[i] = (await ReplyAsync())[..3];
        }

        return replies;
    }

    /// <summary>A verifier whose one thread is busy with a verification the test holds.</summary>
    private async Task<(FtpPasswordVerifier Verifier, Task<FtpVerification> Held)> BusyVerifierAsync(int maxWaiting)
    {
        var verifier = new FtpPasswordVerifier(1, maxWaiting, _gate.Verify);
        var held = verifier.VerifyAsync("held", "hash", Patience, CancellationToken.None);
        await _gate.NextStartedAsync();
        return (verifier, held);
    }

    private async Task WaitForPendingAsync(FtpPasswordVerifier verifier, int pending)
    {
        while (verifier.Pending != pending)
        {
            await Task.Delay(10, _timeout.Token);
        }
    }

    [Fact]
    public async Task AnonymousLoginsBetweenFailuresDoNotResetTheConnectionsCount()
    {
        using var verifier = new FtpPasswordVerifier(1, 4, FtpPasswordHasher.Verify);
        var handler = Start(verifier);
        await SendAsync("USER alice\r\nPASS wrong\r\nUSER anonymous\r\nPASS a@b\r\nUSER alice\r\nPASS wrong\r\nUSER anonymous\r\nPASS a@b\r\nUSER alice\r\nPASS wrong\r\n");
        Assert.Equal(["220", "331", "530", "331", "230", "331", "530", "331", "230", "331", "421"], await RepliesAsync(11));
        Assert.Equal("(closed)", await ReplyAsync());
        await handler.WaitAsync(_timeout.Token);
        Assert.Equal(
            [("failed", "hash"), ("ok", "none"), ("failed", "hash"), ("ok", "none"), ("failed", "hash")],
            _activity.Logins);
    }

    [Fact]
    public async Task APassWaitingForItsVerificationLeavesTheQueueWhenTheConnectionEnds()
    {
        var (verifier, held) = await BusyVerifierAsync(maxWaiting: 4);
        using (verifier)
        {
            var handler = await StartWithAlicesPassAsync(verifier);
            await WaitForPendingAsync(verifier, 2);

            _connection.Close();
            await handler.WaitAsync(_timeout.Token);
            Assert.Equal(1, verifier.Pending);
            _gate.Release();
            await held;
            Assert.Equal(["held"], _gate.Started); // alice's password was never hashed for a connection that had gone
            Assert.Empty(_activity.Logins);
        }
    }

    [Fact]
    public async Task ACloseRequestWhileAPassWaitsAnswers421()
    {
        var (verifier, held) = await BusyVerifierAsync(maxWaiting: 4);
        using (verifier)
        {
            var handler = await StartWithAlicesPassAsync(verifier);
            await WaitForPendingAsync(verifier, 2);

            _connection.RequestClose();
            Assert.StartsWith("421 Service closing", await ReplyAsync(), StringComparison.Ordinal);
            await handler.WaitAsync(_timeout.Token);
            Assert.Equal(1, verifier.Pending);
            _gate.Release();
            await held;
        }
    }

    [Fact]
    public async Task APassBeyondTheQueueGets421AtOnceAndIsReported()
    {
        var (verifier, held) = await BusyVerifierAsync(maxWaiting: 0);
        using (verifier)
        {
            var handler = await StartWithAlicesPassAsync(verifier);
            Assert.StartsWith("421 Too many logins in progress", await ReplyAsync(), StringComparison.Ordinal);
            await handler.WaitAsync(_timeout.Token);
            Assert.Equal([("queue_full", "none")], _activity.Logins);
            _gate.Release();
            await held;
        }
    }

    [Fact]
    public async Task AVerificationThatFailsInOurCodeAnswers421AndIsReported()
    {
        using var verifier = new FtpPasswordVerifier(1, 4, (_, _) => throw new InvalidOperationException("a bug"));
        var handler = await StartWithAlicesPassAsync(verifier);
        Assert.StartsWith("421 Login could not be checked", await ReplyAsync(), StringComparison.Ordinal);
        await handler.WaitAsync(_timeout.Token);
        Assert.Equal(("pass", "a bug"), _activity.Faults.Select(f => (f.Operation, f.Exception.Message)).Single());
    }
}
