using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Gateway.Protocols.Ftp;

namespace Gateway.Tests;

/// <summary>
/// Explicit FTPS (RFC 4217) with real clients: Python's ftplib.FTP_TLS (Scripts/ftps_checks.py: session
/// resumption on data connections, the STARTTLS injection, an upload cut without close_notify, policies),
/// curl --ssl-reqd and lftp with ftp:ssl-force, against gateways with a certificate made by openssl.
/// </summary>
public sealed class FtpsTests : IAsyncLifetime
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("gateway-ftps-");
    private readonly Dictionary<string, GatewayProcess> _gateways = [];

    private string CertificatePath => Path.Combine(_directory.FullName, "tls.crt");

    private string Root => Path.Combine(_directory.FullName, "root");

    public async Task InitializeAsync()
    {
        await TlsTests.MakeCertificateAsync("gateway-ftps", CertificatePath, Path.Combine(_directory.FullName, "tls.key"));
        Directory.CreateDirectory(Path.Combine(Root, "alice"));
        Directory.CreateDirectory(Path.Combine(Root, "bob"));
        await File.WriteAllTextAsync(Path.Combine(Root, "alice", "hello.txt"), "hello over ftps\n");
    }

    public async Task DisposeAsync()
    {
        foreach (var gateway in _gateways.Values)
        {
            await gateway.DisposeAsync();
        }

        _directory.Delete(recursive: true);
    }

    /// <summary>One gateway per FTP TLS mode and model, started on first use.</summary>
    private async Task<GatewayProcess> GatewayAsync(string mode = "explicit", string model = "kestrel")
    {
        var key = mode + "/" + model;
        if (!_gateways.TryGetValue(key, out var gateway))
        {
            gateway = await GatewayProcess.StartAsync([
                .. GatewayProcess.LoopbackArgs, $"--Gateway:Listeners:Ftp:Model={model}", $"--Gateway:Listeners:Ftp:Tls={mode}",
                "--Gateway:Listeners:Ftp:ImplicitTlsPort=0",
                "--Gateway:Workers:Count=2", $"--Gateway:Listeners:Ftp:Root={Root}",
                $"--Gateway:Tls:CertificatePath={CertificatePath}", $"--Gateway:Tls:KeyPath={Path.Combine(_directory.FullName, "tls.key")}",
                "--Gateway:Listeners:Ftp:Users:0:Name=alice", $"--Gateway:Listeners:Ftp:Users:0:PasswordHash={FtpPasswordHasher.Hash("alice-pw", 1000)}",
                "--Gateway:Listeners:Ftp:Users:1:Name=bob", $"--Gateway:Listeners:Ftp:Users:1:PasswordHash={FtpPasswordHasher.Hash("bob-pw", 1000)}",
                "--Gateway:Listeners:Ftp:Users:1:RequireTls=true",
            ]);
            _gateways[key] = gateway;
        }

        return gateway;
    }

    [Theory]
    [InlineData("explicit", "kestrel")]
    [InlineData("explicit", "epoll")]
    [InlineData("explicit", "prefork")]
    [InlineData("injection", "kestrel")]
    [InlineData("alpn", "kestrel")]
    [InlineData("alpn", "epoll")]
    [InlineData("closed_by_admin", "kestrel")]
    [InlineData("closed_by_admin", "prefork")]
    [InlineData("truncated_upload", "kestrel")]
    [InlineData("user_requires_tls", "kestrel")]
    public async Task FtplibOverTls(string check, string model)
    {
        var gateway = await GatewayAsync("explicit", model);
        await RunCheckAsync(gateway, check);
        if (check == "explicit")
        {
            // One AUTH TLS and four PROT P transfers (STOR, RETR, NLST, LIST): each handshake counted by channel, a
            // prefork worker's too; the NLST after PROT C has none.
            using var admin = new AdminApi(gateway);
            var metrics = await admin.MetricsAsync(m => AdminApi.SumOf(m, "gateway_tls_handshakes_total") >= 5);
            Assert.Equal((1d, 4d, 0d), (
                AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "protocol=\"ftp\"", $"model=\"{model}\"", "channel=\"control\"", "outcome=\"ok\""),
                AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "protocol=\"ftp\"", $"model=\"{model}\"", "channel=\"data\"", "outcome=\"ok\""),
                AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "outcome=\"failed\"")));
        }
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    public async Task ImplicitFtpsOnItsOwnPortWorksWithFtplibAndCurl(string model)
    {
        var gateway = await GatewayAsync(model: model);
        Assert.Contains($"(model {model}, implicit TLS)", gateway.Output, StringComparison.Ordinal);
        await RunCheckAsync(gateway, "implicit", gateway.Endpoint("ftps"));

        // curl's ftps:// is implicit FTPS.
        var url = $"ftps://127.0.0.1:{gateway.Endpoint("ftps").Port}/";
        var upload = Path.Combine(_directory.FullName, $"implicit-{model}.bin");
        await File.WriteAllBytesAsync(upload, System.Security.Cryptography.RandomNumberGenerator.GetBytes(400_000));
        await CurlAsync("-T", upload, url + $"implicit-{model}.bin");
        var download = upload + ".back";
        await CurlAsync("-o", download, url + $"implicit-{model}.bin");
        Assert.Equal(await File.ReadAllBytesAsync(upload), await File.ReadAllBytesAsync(download));
        Assert.Contains($"implicit-{model}.bin", await CurlAsync("--list-only", url), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ARequiredListenerRefusesLoginAndClearDataBeforeTls()
    {
        var gateway = await GatewayAsync("required");
        Assert.Contains("(model kestrel, TLS required)", gateway.Output, StringComparison.Ordinal);
        await RunCheckAsync(gateway, "required");
    }

    [Fact]
    public async Task TheAdminApiShowsWhichFtpSessionsAreEncrypted()
    {
        var gateway = await GatewayAsync();
        using var admin = new AdminApi(gateway);
        using var socket = await TcpClients.ConnectAsync(gateway.Endpoint("ftp"));
        await using var tls = await LogInOverTlsAsync(socket);

        var page = await admin.WaitForAsync($"/admin/connections?protocol=ftp&remote={socket.LocalEndPoint}", p => p.Num("total") == 1);
        var details = page.Items().Single().GetProperty("details");
        Assert.Equal(("alice", "Tls12, PROT P"), (details.Str("user"), details.Str("tls")));
    }

    [Fact]
    public async Task FailedHandshakesAreCountedAndCostOnlyTheirOwnConnection()
    {
        var gateway = await GatewayAsync();
        using var admin = new AdminApi(gateway);

        // A client that goes on in plaintext after 234: the control handshake fails and the connection closes.
        using (var socket = await TcpClients.ConnectAsync(gateway.Endpoint("ftp")))
        {
            await using var plain = new NetworkStream(socket, ownsSocket: false);
            Assert.StartsWith("220", await ReadReplyAsync(plain));
            await plain.WriteAsync("AUTH TLS\r\n"u8.ToArray());
            Assert.StartsWith("234", await ReadReplyAsync(plain));
            await plain.WriteAsync("USER alice\r\n"u8.ToArray());
            Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(socket, TimeSpan.FromSeconds(30)));
        }

        // Under PROT P, a data connection that speaks plaintext: 425 for that transfer, and the session goes on.
        using var control = await TcpClients.ConnectAsync(gateway.Endpoint("ftp"));
        await using var tls = await LogInOverTlsAsync(control);
        await tls.WriteAsync("PASV\r\n"u8.ToArray());
        var pasv = await ReadReplyAsync(tls);
        Assert.StartsWith("227", pasv);
        var numbers = pasv[(pasv.IndexOf('(', StringComparison.Ordinal) + 1)..pasv.IndexOf(')', StringComparison.Ordinal)].Split(',').Select(int.Parse).ToArray();
        using var data = await TcpClients.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, numbers[4] * 256 + numbers[5]));
        await tls.WriteAsync("NLST\r\n"u8.ToArray());
        Assert.StartsWith("150", await ReadReplyAsync(tls));
        await data.SendAsync("not a ClientHello\r\n"u8.ToArray(), SocketFlags.None);
        Assert.StartsWith("425 Can't open data connection: its TLS handshake failed.", await ReadReplyAsync(tls), StringComparison.Ordinal);
        await tls.WriteAsync("NOOP\r\n"u8.ToArray());
        Assert.StartsWith("200", await ReadReplyAsync(tls));

        var metrics = await admin.MetricsAsync(m => AdminApi.SumOf(m, "gateway_tls_handshakes_total", "outcome=\"failed\"") >= 2);
        Assert.Equal((1d, 1d, 1d, 0d), (
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "channel=\"control\"", "outcome=\"failed\""),
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "channel=\"control\"", "outcome=\"ok\""),
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "channel=\"data\"", "outcome=\"failed\""),
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "channel=\"data\"", "outcome=\"ok\"")));
        Assert.Equal(1, AdminApi.SumOf(metrics, "gateway_protocol_errors_total", "protocol=\"ftp\"", "code=\"tls_handshake_failed\""));
    }

    /// <summary>AUTH TLS on a fresh control connection, then alice logged in with PBSZ 0 and PROT P.</summary>
    private async Task<SslStream> LogInOverTlsAsync(Socket socket)
    {
        var plain = new NetworkStream(socket, ownsSocket: false);
        Assert.StartsWith("220", await ReadReplyAsync(plain));
        await plain.WriteAsync("AUTH TLS\r\n"u8.ToArray());
        Assert.StartsWith("234", await ReadReplyAsync(plain));
        var tls = new SslStream(plain, leaveInnerStreamOpen: false);
        using var trusted = X509CertificateLoader.LoadCertificateFromFile(CertificatePath);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "127.0.0.1",
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate?.GetCertHashString() == trusted.Thumbprint,
        });
        foreach (var (command, code) in new[] { ("USER alice", "331"), ("PASS alice-pw", "230"), ("PBSZ 0", "200"), ("PROT P", "200") })
        {
            await tls.WriteAsync(Encoding.ASCII.GetBytes(command + "\r\n"));
            Assert.StartsWith(code, await ReadReplyAsync(tls));
        }

        return tls;
    }

    /// <summary>One reply line (the tests here send one command at a time).</summary>
    private static async Task<string> ReadReplyAsync(Stream stream)
    {
        var line = new List<byte>();
        var one = new byte[1];
        while (!(line.Count >= 2 && line[^2] == '\r' && line[^1] == '\n'))
        {
            Assert.True(await stream.ReadAsync(one) == 1, "the server closed the connection");
            line.Add(one[0]);
        }

        return Encoding.UTF8.GetString(line.ToArray());
    }

    [Fact]
    public async Task CurlUploadsDownloadsAndListsWithSslReqd()
    {
        var gateway = await GatewayAsync();
        var url = $"ftp://127.0.0.1:{gateway.Endpoint("ftp").Port}/";
        var upload = Path.Combine(_directory.FullName, "upload.bin");
        await File.WriteAllBytesAsync(upload, System.Security.Cryptography.RandomNumberGenerator.GetBytes(700_000));
        await CurlAsync("-T", upload, url + "curl.bin");
        var download = Path.Combine(_directory.FullName, "download.bin");
        await CurlAsync("-o", download, url + "curl.bin");
        Assert.Equal(await File.ReadAllBytesAsync(upload), await File.ReadAllBytesAsync(download));
        Assert.Contains("curl.bin", await CurlAsync("--list-only", url), StringComparison.Ordinal);
        Assert.Equal("hello over ftps\n", await CurlAsync(url + "hello.txt"));
        File.Delete(Path.Combine(Root, "alice", "curl.bin"));
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    public async Task AClientRenegotiationEndsThatSessionQuietly(string model)
    {
        // openssl's s_client renegotiates when it reads a line "R": the server refuses (.NET does not renegotiate),
        // and ending the session must not throw out of the handler (it logged an error with a stack trace per try).
        var gateway = await GatewayAsync(model: model);
        var port = gateway.Endpoint("ftp").Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var logged = gateway.Output.Length; // the gateway is shared with other tests: only what this one caused counts
        var (_, stdout, stderr) = await GatewayProcess.RunToExitAsync(TlsTests.Command("sh", "-c",
            $"(sleep 1; echo 'USER alice'; sleep 1; echo R; sleep 3) | openssl s_client -connect 127.0.0.1:{port} -starttls ftp -tls1_2 -CAfile {CertificatePath}"),
            limit: TimeSpan.FromMinutes(1));
        Assert.Contains("RENEGOTIATING", stdout + stderr, StringComparison.Ordinal);
        await Task.Delay(500); // the console logger writes asynchronously
        var output = gateway.Output[logged..];
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain(" fail: ", output, StringComparison.Ordinal);
        await RunCheckAsync(gateway, "explicit"); // and the next client is served
    }

    [Fact]
    public async Task LftpMirrorsBothWaysWithSslForced()
    {
        var gateway = await GatewayAsync();
        var local = Directory.CreateDirectory(Path.Combine(_directory.FullName, "lftp-up"));
        await File.WriteAllTextAsync(Path.Combine(local.FullName, "one.txt"), "one\n");
        await File.WriteAllBytesAsync(Path.Combine(local.FullName, "two.bin"), System.Security.Cryptography.RandomNumberGenerator.GetBytes(300_000));
        var back = Path.Combine(_directory.FullName, "lftp-down");
        var script = string.Join("; ",
            "set ftp:ssl-force true", "set ftp:ssl-protect-data true", $"set ssl:ca-file {CertificatePath}", "set ssl:check-hostname no",
            "set net:max-retries 1", "set net:timeout 20",
            $"open -u alice,alice-pw -p {gateway.Endpoint("ftp").Port} 127.0.0.1",
            $"mirror -R {local.FullName} /mirrored", $"mirror /mirrored {back}");
        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(TlsTests.Command("lftp", "-c", script), limit: TimeSpan.FromMinutes(2));
        Assert.True(code == 0, $"lftp: {stdout}{stderr}");
        Assert.Equal("one\n", await File.ReadAllTextAsync(Path.Combine(back, "one.txt")));
        Assert.Equal(await File.ReadAllBytesAsync(Path.Combine(local.FullName, "two.bin")), await File.ReadAllBytesAsync(Path.Combine(back, "two.bin")));
        Assert.True(File.Exists(Path.Combine(Root, "alice", "mirrored", "two.bin")));
    }

    private async Task<string> CurlAsync(params string[] arguments)
    {
        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(
            TlsTests.Command("curl", ["-sS", "--max-time", "60", "--ssl-reqd", "--cacert", CertificatePath, "-u", "alice:alice-pw", .. arguments]),
            limit: TimeSpan.FromMinutes(2));
        Assert.True(code == 0, $"curl {string.Join(' ', arguments)}: exit {code}\n{stdout}{stderr}");
        return stdout;
    }

    private async Task RunCheckAsync(GatewayProcess gateway, string check, System.Net.IPEndPoint? port = null)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "ftps_checks.py");
        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(
            TlsTests.Command("python3", script, "127.0.0.1", (port ?? gateway.Endpoint("ftp")).Port.ToString(System.Globalization.CultureInfo.InvariantCulture), CertificatePath, check,
                gateway.Admin.ToString().TrimEnd('/')),
            limit: TimeSpan.FromMinutes(2));
        Assert.True(code == 0 && stdout.Contains($"ok {check}", StringComparison.Ordinal), $"ftps check '{check}' failed:\n{stdout}\n{stderr}");
    }
}
