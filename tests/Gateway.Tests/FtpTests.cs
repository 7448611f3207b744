using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Gateway.Protocols.Ftp;

namespace Gateway.Tests;

/// <summary>One gateway with the FTP listener on: alice (read-write), bob (read-only), anonymous allowed.</summary>
public class FtpFixture : IAsyncLifetime
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("gateway-ftp-root-");

    /// <summary>Settings beyond the accounts, for fixtures that test limits.</summary>
    protected virtual string[] ExtraArgs => [];

    internal GatewayProcess Gateway { get; private set; } = null!;

    public string Root => _root.FullName;

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Path.Join(Root, "alice"));
        await File.WriteAllTextAsync(Path.Join(Root, "alice", "hello.txt"), "hello\n");
        string[] args =
        [
            .. GatewayProcess.LoopbackArgs,
            $"--Gateway:Listeners:Ftp:Root={Root}", "--Gateway:Listeners:Ftp:AllowAnonymous=true",
            "--Gateway:Listeners:Ftp:Users:0:Name=alice", $"--Gateway:Listeners:Ftp:Users:0:PasswordHash={FtpPasswordHasher.Hash("alice-pw", 1000)}",
            "--Gateway:Listeners:Ftp:Users:1:Name=bob", $"--Gateway:Listeners:Ftp:Users:1:PasswordHash={FtpPasswordHasher.Hash("bob-pw", 1000)}",
            "--Gateway:Listeners:Ftp:Users:1:ReadOnly=true", "--Gateway:Listeners:Ftp:Users:1:Home=alice",
            .. ExtraArgs,
        ];
        Gateway = await GatewayProcess.StartAsync(Command(args));
    }

    /// <summary>How the gateway is started, for fixtures that run it in a different setting.</summary>
    protected virtual ProcessStartInfo Command(string[] args) => GatewayProcess.Command(args);

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        _root.Delete(recursive: true);
    }
}

[CollectionDefinition(Name)]
public sealed class SharedFtpGateway : ICollectionFixture<FtpFixture>
{
    public const string Name = "ftp";
}

/// <summary>A gateway whose FTP limits are small enough to hit in a test.</summary>
public sealed class FtpLimitsFixture : FtpFixture
{
    protected override string[] ExtraArgs =>
    [
        "--Gateway:Limits:IdleTimeoutSeconds=2", "--Gateway:Listeners:Ftp:LoginFailureDelaySeconds=0.05",
        "--Gateway:Listeners:Ftp:MaxLoginFailuresPerAddress=4", "--Gateway:Listeners:Ftp:LockoutSeconds=120",
        "--Gateway:Listeners:Ftp:MaxUploadBytes=1000", "--Gateway:Listeners:Ftp:AtomicUploads=false",
    ];
}

public sealed class FtpLimitsTests(FtpLimitsFixture fixture) : IClassFixture<FtpLimitsFixture>
{
    [Theory]
    [InlineData("lockout_per_address")]
    [InlineData("idle_timeout_421")]
    [InlineData("upload_limit_discards")]
    [InlineData("non_atomic_keeps_and_resumes")]
    [InlineData("overwrite_after_download")]
    [InlineData("slow_upload_completes")]
    [InlineData("stalled_upload_fails")]
    public Task PythonFtplib(string check) => FtpChecks.RunAsync(fixture.Gateway, check);
}

/// <summary>
/// A gateway in a mount namespace of its own where alice's home is a 2 MiB tmpfs: uploads can run out of space.
/// The mount is seen only by that process and goes away with it.
/// </summary>
public sealed class FtpDiskFullFixture : FtpFixture
{
    protected override ProcessStartInfo Command(string[] args)
    {
        var start = GatewayProcess.Command(args);
        string[] wrapper =
        [
            "--mount", "--propagation", "private", "--",
            "sh", "-c", "mount -t tmpfs -o size=2m gateway-ftp-full \"$0\" && exec \"$@\"", Path.Join(Root, "alice"), start.FileName,
        ];
        for (var i = 0; i < wrapper.Length; i++)
        {
            start.ArgumentList.Insert(i, wrapper[i]);
        }

        start.FileName = "unshare"; // exec all the way down: the process id stays the gateway's
        return start;
    }
}

public sealed class FtpDiskFullTests(FtpDiskFullFixture fixture) : IClassFixture<FtpDiskFullFixture>
{
    [Fact]
    public Task UploadsThatRunOutOfSpaceAreRefusedAndLeaveNothing() => FtpChecks.RunAsync(fixture.Gateway, "disk_full_discards");
}

/// <summary>The FTP fixture with the control listener on one I/O model.</summary>
public sealed class FtpOnModelFixture(string model) : FtpFixture
{
    protected override string[] ExtraArgs => Models.Args(model, "Ftp");
}

/// <summary>One FTP gateway per I/O model, started on first use and stopped at the end.</summary>
public sealed class FtpModelsFixture : IAsyncLifetime
{
    private readonly PerModel<FtpOnModelFixture> _fixtures = new(
        async model =>
        {
            var fixture = new FtpOnModelFixture(model);
            await fixture.InitializeAsync();
            return fixture;
        },
        fixture => fixture.DisposeAsync());

    internal async Task<GatewayProcess> For(string model) => (await _fixtures.For(model)).Gateway;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _fixtures.StopAllAsync();
}

/// <summary>The FTP checks again, on every in-process model (the kestrel run is <see cref="FtpTests"/>).</summary>
public sealed class FtpOnModelsTests(FtpModelsFixture fixture) : IClassFixture<FtpModelsFixture>
{
    private static readonly string[] Checks =
    [
        "commands", "epsv", "ascii", "utf8_names", "read_only_user", "anonymous_read_only", "login_required_and_unknown_user",
        "three_failures_close", "bounce_refused", "pasv_hijack_refused", "abort_transfer", "cut_off_upload_leaves_nothing",
        "vanished_mid_download", "resume_refused_when_atomic", "concurrent_clients", "commands_before_greeting_and_pipelined", "long_line_and_garbage",
        "traversal_stays_inside", "final_reply_ends_transfer",
    ];

    public static TheoryData<string, string> ChecksOnModels()
    {
        var data = new TheoryData<string, string>();
        foreach (var model in Models.Names.Concat(Models.Pools).Where(m => m != "kestrel"))
        {
            // 25 clients at once: the loop server and the sync pool serve them in turn, by design, and the
            // per-connection pool starts 25 .NET processes, which on two busy cores outlasts ftplib's 20 s
            // timeout (PreforkTests covers its concurrent clients, three of them).
            foreach (var check in Checks.Where(c => model is not ("iterative" or "prefork-sync" or "prefork-per-connection") || c != "concurrent_clients"))
            {
                data.Add(model, check);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ChecksOnModels))]
    public async Task PythonFtplib(string model, string check) => await FtpChecks.RunAsync(await fixture.For(model), check);
}

internal static class FtpChecks
{
    public static async Task RunAsync(GatewayProcess gateway, string check)
    {
        var ftp = gateway.Endpoint("ftp");
        var start = new ProcessStartInfo("python3");
        foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "Scripts", "ftp_checks.py"), ftp.Address.ToString(), ftp.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), check })
        {
            start.ArgumentList.Add(arg);
        }

        var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(start);
        Assert.True(exitCode == 0 && stdout.Contains($"ok {check}", StringComparison.Ordinal), $"ftplib check '{check}' failed:\n{stdout}\n{stderr}");
    }
}

[Collection(SharedFtpGateway.Name)]
public sealed class FtpTests(FtpFixture fixture)
{
    private string Host => fixture.Gateway.Endpoint("ftp").Address.ToString();

    private int Port => fixture.Gateway.Endpoint("ftp").Port;

    private Task RunCheckAsync(string check) => FtpChecks.RunAsync(fixture.Gateway, check);

    [Theory]
    [InlineData("commands")]
    [InlineData("epsv")]
    [InlineData("ascii")]
    [InlineData("utf8_names")]
    [InlineData("read_only_user")]
    [InlineData("anonymous_read_only")]
    [InlineData("login_required_and_unknown_user")]
    [InlineData("three_failures_close")]
    [InlineData("bounce_refused")]
    [InlineData("pasv_hijack_refused")]
    [InlineData("abort_transfer")]
    [InlineData("cut_off_upload_leaves_nothing")]
    [InlineData("vanished_mid_download")]
    [InlineData("resume_refused_when_atomic")]
    [InlineData("concurrent_clients")]
    [InlineData("commands_before_greeting_and_pipelined")]
    [InlineData("long_line_and_garbage")]
    [InlineData("traversal_stays_inside")]
    [InlineData("final_reply_ends_transfer")]
    public Task PythonFtplib(string check) => RunCheckAsync(check);

    private static async Task<string> CurlAsync(params string[] args)
    {
        var start = new ProcessStartInfo("curl");
        foreach (var arg in (string[])["-sS", "--max-time", "60", .. args])
        {
            start.ArgumentList.Add(arg);
        }

        var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(start);
        Assert.True(exitCode == 0, $"curl {string.Join(' ', args)} exited {exitCode}: {stderr}");
        return stdout;
    }

    [Fact]
    public async Task CurlUploadsWithCreateDirsDownloadsListsAndUsesEveryDataMode()
    {
        var url = $"ftp://alice:alice-pw@{Host}:{Port}";
        var local = Path.GetTempFileName();
        var back = Path.GetTempFileName();
        try
        {
            var data = new byte[3_000_000];
            Random.Shared.NextBytes(data);
            await File.WriteAllBytesAsync(local, data);
            await CurlAsync("--ftp-create-dirs", "-T", local, $"{url}/curl/new%20dir/data.bin");
            Assert.Contains(" data.bin", await CurlAsync($"{url}/curl/new%20dir/"), StringComparison.Ordinal);
            foreach (var mode in new[] { Array.Empty<string>(), ["--ftp-pasv", "--disable-epsv"], ["-P", "-"] })
            {
                await CurlAsync([.. mode, "-o", back, $"{url}/curl/new%20dir/data.bin"]);
                var downloaded = await File.ReadAllBytesAsync(back);
                Assert.True(data.AsSpan().SequenceEqual(downloaded), $"download with [{string.Join(' ', mode)}] differs");
            }

            File.Delete(back); // with -C, curl appends to the output file
            await CurlAsync("-C", "1000000", "-o", back, $"{url}/curl/new%20dir/data.bin");
            var resumed = await File.ReadAllBytesAsync(back);
            Assert.True(data.AsSpan(1_000_000).SequenceEqual(resumed), "resumed download differs");
            Assert.Equal("data.bin\n", (await CurlAsync("--list-only", $"{url}/curl/new%20dir/")).Replace("\r", "", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(local);
            File.Delete(back);
        }
    }

    [Fact]
    public async Task LftpMirrorsATreeUpAndBackByteIdentical()
    {
        var work = Directory.CreateTempSubdirectory("gateway-lftp-");
        try
        {
            var source = Path.Join(work.FullName, "source");
            var files = new Dictionary<string, byte[]>
            {
                ["with space/ünïcödé ✓.txt"] = Encoding.UTF8.GetBytes("non-ASCII name\n"),
                ["a/b/deep.bin"] = new byte[1_500_000],
                ["top.txt"] = "top\r\nline ends kept\n"u8.ToArray(),
            };
            Random.Shared.NextBytes(files["a/b/deep.bin"]);
            foreach (var (name, content) in files)
            {
                Directory.CreateDirectory(Path.GetDirectoryName(Path.Join(source, name))!);
                await File.WriteAllBytesAsync(Path.Join(source, name), content);
            }

            Directory.CreateDirectory(Path.Join(source, "empty dir"));
            var back = Path.Join(work.FullName, "back");
            var script = $"set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 20; set cmd:fail-exit yes; "
                + $"mirror -R --verbose=1 \"{source}\" /lftp-tree; mirror --verbose=1 /lftp-tree \"{back}\"; bye";
            var start = new ProcessStartInfo("lftp", ["-u", "alice,alice-pw", "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-e", script, Host]);
            var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(start);
            Assert.True(exitCode == 0, $"lftp exited {exitCode}:\n{stdout}\n{stderr}");

            foreach (var (name, content) in files)
            {
                var copy = Path.Join(back, name);
                Assert.True(File.Exists(copy), $"{name} did not come back:\n{stdout}");
                var returned = await File.ReadAllBytesAsync(copy);
                Assert.True(content.AsSpan().SequenceEqual(returned), $"{name} differs after the round trip");
                var onServer = await File.ReadAllBytesAsync(Path.Join(fixture.Root, "alice", "lftp-tree", name));
                Assert.True(content.AsSpan().SequenceEqual(onServer), $"{name} differs on the server");
            }

            Assert.True(Directory.Exists(Path.Join(back, "empty dir")), "the empty directory did not come back");
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task SymlinkLeadingOutOfTheRootCannotBeReadOrListed()
    {
        var outside = Path.GetTempFileName();
        await File.WriteAllTextAsync(outside, "secret");
        var link = Path.Join(fixture.Root, "alice", "escape.txt");
        File.CreateSymbolicLink(link, outside);
        try
        {
            var url = $"ftp://alice:alice-pw@{Host}:{Port}";
            Assert.DoesNotContain("escape", await CurlAsync("--list-only", $"{url}/"), StringComparison.Ordinal);
            var start = new ProcessStartInfo("curl", ["-sS", "--max-time", "30", $"{url}/escape.txt"]);
            var (exitCode, stdout, _) = await GatewayProcess.RunToExitAsync(start);
            Assert.NotEqual(0, exitCode);
            Assert.DoesNotContain("secret", stdout, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(link);
            File.Delete(outside);
        }
    }

    [Fact]
    public async Task AdminCloseSays421AndTheRegistryShowsFtpCommands()
    {
        using var control = await TcpClients.ConnectAsync(fixture.Gateway.Endpoint("ftp"));
        var reader = new StreamReader(new NetworkStream(control), Encoding.UTF8);
        Assert.StartsWith("220", await reader.ReadLineAsync());
        await control.SendAsync("USER alice\r\nPASS alice-pw\r\nNOOP\r\n"u8.ToArray(), SocketFlags.None);
        Assert.StartsWith("331", await reader.ReadLineAsync());
        Assert.StartsWith("230", await reader.ReadLineAsync());
        Assert.StartsWith("200", await reader.ReadLineAsync());

        using var admin = new AdminApi(fixture.Gateway);
        var page = await admin.WaitForAsync($"/admin/connections?protocol=ftp&remote={control.LocalEndPoint}", p => p.Items().Any(i => i.Num("messages") >= 3));
        var item = page.Items().Single();
        var details = item.GetProperty("details");
        Assert.Equal(("alice", "/"), (details.Str("user"), details.Str("cwd")));
        var id = item.Str("id");
        Assert.Equal(202, (await admin.SendAsync(HttpMethod.Delete, $"/admin/connections/{id}?reason=ftp%20test")).Status);
        Assert.StartsWith("421", await reader.ReadLineAsync());
        Assert.Null(await reader.ReadLineAsync());
    }
}
