using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests;

/// <summary>
/// An FTP gateway on one model, set up for what a hostile client tries (Scripts/ftp_hostile_checks.py): a 3 s idle
/// and data timeout, non-atomic uploads capped at 1,000,000 bytes, 3 pending passive listeners per address, and in
/// alice's home a 64 MiB file, a FIFO and a file whose name holds a CR.
/// </summary>
public sealed class FtpHostileFixture(string model, params string[] settings) : FtpFixture
{
    protected override string[] ExtraArgs =>
    [
        .. Models.Args(model, "Ftp"),
        "--Gateway:Limits:IdleTimeoutSeconds=3", "--Gateway:Listeners:Ftp:AtomicUploads=false",
        "--Gateway:Listeners:Ftp:MaxUploadBytes=1000000", "--Gateway:Listeners:Ftp:MaxPassiveListenersPerAddress=3",
        .. settings, // later settings win
    ];

    public string Hostile => Path.Join(Root, "alice", "hostile");

    /// <summary>Makes the files the checks use (after the gateway started: it reads them only when asked).</summary>
    public async Task PrepareAsync()
    {
        Directory.CreateDirectory(Hostile);
        await using (var big = File.Create(Path.Join(Hostile, "big.bin")))
        {
            big.SetLength(64 << 20); // sparse: sendfile reads zeros without a disk behind them
        }

        await File.WriteAllTextAsync(Path.Join(Hostile, "small.txt"), "small\n");
        await File.WriteAllTextAsync(Path.Join(Hostile, "evil\r-rw-r--r--   1 ftp      ftp             1 Jan 01 00:00 FAKE.txt"), "x");
        var (exitCode, _, stderr) = await GatewayProcess.RunToExitAsync(new ProcessStartInfo("mkfifo", Path.Join(Hostile, "pipe")));
        Assert.True(exitCode == 0, $"mkfifo failed: {stderr}");
    }
}

/// <summary>One hostile-FTP gateway per model, started on first use and stopped at the end.</summary>
public sealed class FtpHostileModelsFixture : IAsyncLifetime
{
    private readonly PerModel<FtpHostileFixture> _fixtures = new(
        async model =>
        {
            var fixture = new FtpHostileFixture(model);
            await fixture.InitializeAsync();
            await fixture.PrepareAsync();
            return fixture;
        },
        fixture => fixture.DisposeAsync());

    internal Task<FtpHostileFixture> For(string model) => _fixtures.For(model);

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _fixtures.StopAllAsync();
}

/// <summary>
/// What the outside review found a hostile FTP client could make the server hold — a stalled download, a FIFO,
/// a REST near 2^63, the passive range, control characters in names — on every model and the pool, each check
/// followed by the proof that no process of the gateway still has one of the checks' files open.
/// </summary>
public sealed class FtpHostileTests(FtpHostileModelsFixture fixtures) : IClassFixture<FtpHostileModelsFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    private static readonly string[] Checks =
    [
        "stalled_download_ends", "fifo_refused", "rest_past_end_refused", "limit_counts_the_file", "passive_cap_per_address",
        "passive_listener_times_out", "control_characters_in_names", "data_reset_at_each_step",
        "bad_names_and_offsets_refused_before_150",
    ];

    public static TheoryData<string, string> ChecksOnModels()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in Models.Names.Concat(Models.Pools))
        {
            // The cap per address is per process: a pool's workers (or per-connection processes) count apart, as
            // SECURITY.md says; and the loop server serves one session at a time, so four at once is not its shape.
            foreach (var check in Checks.Where(c => (model is not "iterative" && !Models.Pools.Contains(model)) || c != "passive_cap_per_address"))
            {
                data.Add(model, check);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ChecksOnModels))]
    public async Task HostileClientGetsItsReplyAndLeavesNothingOpen(string model, string check) =>
        await RunCheckAsync(await fixtures.For(model), model, check);

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    public async Task AnAtomicUploadNeverReplacesAFifo(string model)
    {
        var fixture = new FtpHostileFixture(model, "--Gateway:Listeners:Ftp:AtomicUploads=true");
        await fixture.InitializeAsync();
        try
        {
            await fixture.PrepareAsync();
            await RunCheckAsync(fixture, model, "upload_never_replaces_a_fifo");
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }

    private static async Task RunCheckAsync(FtpHostileFixture fixture, string model, string check)
    {
        var ftp = fixture.Gateway.Endpoint("ftp");
        var start = new ProcessStartInfo("python3");
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "Scripts", "ftp_hostile_checks.py"), ftp.Address.ToString(), ftp.Port.ToString(CultureInfo.InvariantCulture), check, fixture.Root })
        {
            start.ArgumentList.Add(arg);
        }

        var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(start, limit: TimeSpan.FromMinutes(2));
        Assert.True(exitCode == 0 && stdout.Contains($"ok {check}", StringComparison.Ordinal), $"check '{check}' on {model} failed:\n{stdout}\n{stderr}");
        await OpenFiles.WaitUntilNoneUnderAsync(fixture.Gateway.Pid, fixture.Hostile, Patience);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    [InlineData("threads")]
    [InlineData("prefork")]
    public async Task AClientThatNeverReadsItsRepliesIsClosedAfterTheIdleTimeout(string model)
    {
        // Commands pipelined without ever reading a reply: the replies fill the socket and the output pipe, and
        // the session waits in a flush. The idle timer runs only while a command is awaited, so without a bound
        // on that flush the session stayed for ever.
        var fixture = await fixtures.For(model);
        using var admin = new AdminApi(fixture.Gateway);
        using var control = await FtpControl.LogInAsync(fixture.Gateway.Endpoint("ftp"));
        control.Socket.ReceiveBufferSize = 4096;
        var remote = control.Socket.LocalEndPoint!.ToString();
        await admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Num("total") == 1);
        var noops = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Repeat("NOOP\r\n", 10_000)));
        control.Socket.Blocking = false;
        var sent = 0L;
        var stuck = Stopwatch.StartNew();
        while (stuck.Elapsed < TimeSpan.FromSeconds(1) && sent < 256L << 20)
        {
            try
            {
                sent += control.Socket.Send(noops);
                stuck.Restart();
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.WouldBlock)
            {
                await Task.Delay(20); // the server has stopped reading: it waits for us to take its replies
            }
        }

        Assert.True(stuck.Elapsed >= TimeSpan.FromSeconds(1), $"the server read all {sent} bytes of commands without being held back");
        // The idle timeout is 3 s: the connection goes then, though the client never read a byte.
        await admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Num("total") == 0, TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task PassiveCapIsCountedInMetrics()
    {
        var fixture = await fixtures.For("kestrel");
        using var admin = new AdminApi(fixture.Gateway);
        var ftp = fixture.Gateway.Endpoint("ftp");
        var sessions = new List<FtpControl>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                sessions.Add(await FtpControl.LogInAsync(ftp, IPAddress.Parse("127.0.0.6")));
            }

            for (var i = 0; i < 3; i++)
            {
                Assert.StartsWith("229", await sessions[i].CommandAsync("EPSV"), StringComparison.Ordinal);
            }

            Assert.StartsWith("425", await sessions[3].CommandAsync("EPSV"), StringComparison.Ordinal);
            await admin.MetricsAsync(m => AdminApi.SumOf(m, "gateway_limits_reached_total", "limit=\"ftp_passive_ports_per_address\"") >= 1);
        }
        finally
        {
            foreach (var session in sessions)
            {
                session.Dispose();
            }
        }
    }
}

/// <summary>
/// A download the client stopped reading, under a data timeout (30 s) longer than the admin close's grace and the
/// drain: the close and the stop must end it themselves, closing the file, and the process must exit in time.
/// </summary>
public sealed class FtpStalledDownloadTests
{
    private static readonly string[] LongDataTimeout = ["--Gateway:Limits:IdleTimeoutSeconds=60"];

    public static TheoryData<string> ModelsAndPool => ["kestrel", "epoll", "threads", "prefork"];

    [Theory]
    [MemberData(nameof(ModelsAndPool))]
    public Task AdminCloseEndsAStalledDownloadWithinItsGrace(string model) =>
        WithStalledDownloadAsync(model, "--Gateway:Admin:CloseGraceSeconds=2", async (fixture, control) =>
        {
            using var admin = new AdminApi(fixture.Gateway);
            var remote = control.Socket.LocalEndPoint!.ToString();
            var item = (await admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Num("total") == 1)).Items().Single();
            Assert.Equal(202, (await admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{item.Str("id")}")).Status);
            // Grace 2 s, then the abort ends the transfer: gone from the listing, its file closed, well before
            // the 30 s data timeout could have ended it.
            await admin.WaitForAsync($"/admin/connections?remote={remote}", p => p.Num("total") == 0, TimeSpan.FromSeconds(12));
            await OpenFiles.WaitUntilNoneUnderAsync(fixture.Gateway.Pid, fixture.Hostile, TimeSpan.FromSeconds(5));
        });

    [Theory]
    [MemberData(nameof(ModelsAndPool))]
    public Task SigtermStopsTheProcessWithinTheShutdownTimeoutDespiteAStalledDownload(string model) =>
        WithStalledDownloadAsync(model, "--Gateway:Limits:ShutdownTimeoutSeconds=3", async (fixture, _) =>
        {
            var stopping = Stopwatch.StartNew();
            fixture.Gateway.Terminate();
            // ShutdownTimeoutSeconds 3, plus a few seconds for the host to stop; it took 62 s with 30 before.
            await fixture.Gateway.WaitForExitAsync(TimeSpan.FromSeconds(15));
            Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(10), $"the gateway took {stopping.Elapsed.TotalSeconds:0.0} s to stop");
        });

    /// <summary>A gateway of its own with a 30 s data timeout and <paramref name="setting"/>, and a download stalled on it.</summary>
    private static async Task WithStalledDownloadAsync(string model, string setting, Func<FtpHostileFixture, FtpControl, Task> test)
    {
        var fixture = new FtpHostileFixture(model, [.. LongDataTimeout, setting]);
        await fixture.InitializeAsync();
        try
        {
            await fixture.PrepareAsync();
            var (control, data) = await StallAsync(fixture.Gateway.Endpoint("ftp"));
            using (control)
            using (data)
            {
                await test(fixture, control);
            }
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }

    /// <summary>Starts a 64 MiB binary download into a 4 KiB receive buffer, reads 1,000 bytes of it and stops reading.</summary>
    private static async Task<(FtpControl Control, Socket Data)> StallAsync(IPEndPoint ftp)
    {
        var control = await FtpControl.LogInAsync(ftp);
        Socket? data = null;
        try
        {
            Assert.StartsWith("200", await control.CommandAsync("TYPE I"), StringComparison.Ordinal);
            var port = FtpControl.PassivePort(await control.CommandAsync("EPSV"));
            data = new Socket(ftp.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
            await data.ConnectAsync(new IPEndPoint(ftp.Address, port));
            Assert.StartsWith("150", await control.CommandAsync("RETR hostile/big.bin"), StringComparison.Ordinal);
            Assert.True(await data.ReceiveAsync(new byte[1000], SocketFlags.None) > 0, "no data came");
            return (control, data);
        }
        catch
        {
            data?.Dispose();
            control.Dispose();
            throw;
        }
    }
}

/// <summary>A bare FTP control connection, for tests that hold sessions open while they look at the server.</summary>
internal sealed class FtpControl : IDisposable
{
    private readonly Socket _socket;
    private StreamReader? _reader;

    private FtpControl(Socket socket) => _socket = socket;

    public Socket Socket => _socket;

    public static async Task<FtpControl> LogInAsync(IPEndPoint server, IPAddress? source = null, string user = "alice", string password = "alice-pw")
    {
        var socket = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        if (source is not null)
        {
            socket.Bind(new IPEndPoint(source, 0));
        }

        var control = new FtpControl(socket);
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            await socket.ConnectAsync(server, timeout.Token);
            control._reader = new StreamReader(new NetworkStream(socket), Encoding.UTF8);
            Assert.StartsWith("220", await control.ReplyAsync(), StringComparison.Ordinal);
            Assert.StartsWith("331", await control.CommandAsync($"USER {user}"), StringComparison.Ordinal);
            Assert.StartsWith("230", await control.CommandAsync($"PASS {password}"), StringComparison.Ordinal);
            return control;
        }
        catch
        {
            control.Dispose();
            throw;
        }
    }

    public async Task<string> CommandAsync(string line)
    {
        await _socket.SendAsync(Encoding.UTF8.GetBytes(line + "\r\n"), SocketFlags.None);
        return await ReplyAsync();
    }

    /// <summary>The next reply's last line (a multi-line reply's continuation lines are skipped).</summary>
    public async Task<string> ReplyAsync(TimeSpan? timeout = null)
    {
        using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var line = await _reader!.ReadLineAsync(cancel.Token) ?? throw new IOException("the server closed the control connection");
            if (line.Length >= 4 && char.IsAsciiDigit(line[0]) && line[3] == ' ')
            {
                return line;
            }
        }
    }

    /// <summary>The port of an EPSV reply: <c>229 Entering Extended Passive Mode (|||port|)</c>.</summary>
    public static int PassivePort(string reply) => int.Parse(reply.Split('|')[3], CultureInfo.InvariantCulture);

    public void Dispose()
    {
        _reader?.Dispose();
        _socket.Dispose();
    }
}

/// <summary>The files a process (and the processes it started: a pool's workers) has open, read from /proc.</summary>
internal static class OpenFiles
{
    public static IEnumerable<string> Under(int pid, string directory)
    {
        var prefix = Path.TrimEndingDirectorySeparator(Path.GetFullPath(directory)) + Path.DirectorySeparatorChar;
        foreach (var process in WithDescendants(pid))
        {
            string[] descriptors;
            try
            {
                descriptors = Directory.GetFiles($"/proc/{process}/fd");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // it has exited meanwhile
            }

            foreach (var descriptor in descriptors)
            {
                var target = new FileInfo(descriptor).LinkTarget;
                if (target is not null && target.StartsWith(prefix, StringComparison.Ordinal))
                {
                    yield return $"{process}: {target}";
                }
            }
        }
    }

    /// <summary>Waits (bounded) until none of the processes has a file under <paramref name="directory"/> open; fails naming them.</summary>
    public static async Task WaitUntilNoneUnderAsync(int pid, string directory, TimeSpan patience)
    {
        var deadline = Stopwatch.StartNew();
        string[] open;
        while ((open = [.. Under(pid, directory)]).Length > 0 && deadline.Elapsed < patience)
        {
            await Task.Delay(100);
        }

        Assert.True(open.Length == 0, $"still open after {patience.TotalSeconds} s: {string.Join(", ", open)}");
    }

    private static IEnumerable<int> WithDescendants(int pid)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var stat in Directory.GetDirectories("/proc").Select(Path.GetFileName).Where(n => n!.All(char.IsAsciiDigit)))
        {
            try
            {
                // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
                var text = File.ReadAllText($"/proc/{stat}/stat");
                var parent = int.Parse(text[(text.LastIndexOf(')') + 2)..].Split(' ')[1], CultureInfo.InvariantCulture);
                (children.TryGetValue(parent, out var list) ? list : children[parent] = []).Add(int.Parse(stat!, CultureInfo.InvariantCulture));
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // exited meanwhile
            }
        }

        var pending = new Stack<int>([pid]);
        while (pending.TryPop(out var next))
        {
            yield return next;
            foreach (var child in children.GetValueOrDefault(next) ?? [])
            {
                pending.Push(child);
            }
        }
    }
}
