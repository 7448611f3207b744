using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;

namespace Gateway.Tests;

/// <summary>
/// TLS on the echo and RPC listeners (Gateway:Listeners:{Echo,Rpc}:Tls), with certificates made by the real
/// openssl and real clients: Python's ssl module verifying the certificate (Scripts/tls_client.py) and
/// `openssl s_client`.
/// </summary>
public sealed class TlsTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("gateway-tls-");

    public void Dispose() => _directory.Delete(recursive: true);

    private string CertificatePath => Path.Combine(_directory.FullName, "tls.crt");

    private string KeyPath => Path.Combine(_directory.FullName, "tls.key");

    public static TheoryData<string> TlsModels() => ["kestrel", "epoll", "threads", "prefork"];

    [Theory]
    [MemberData(nameof(TlsModels))]
    public async Task EchoAndRpcAreServedOverTlsWithTheConfiguredCertificate(string model)
    {
        await MakeCertificateAsync("gateway-test", CertificatePath, KeyPath);
        await using var gateway = await StartAsync(model);
        using var admin = new AdminApi(gateway);
        Assert.True(await gateway.LogsAsync("(model " + model + ", TLS)", TimeSpan.FromSeconds(1)), gateway.Output);

        var echo = await ClientAsync(gateway.Echo.Port, "echo", "hello over tls");
        Assert.Equal(("TLSv1.3", "gateway-test", "hello over tls"), (echo.Str("version"), echo.Str("subject"), echo.Str("answer")));
        var rpc = await ClientAsync(gateway.Rpc.Port, "rpc", "ireader 0");
        Assert.Equal(("pong", "ireader 0", 1), (rpc.GetProperty("answer").Str("out"), rpc.GetProperty("answer").Str("result"), rpc.GetProperty("answer").GetProperty("id").GetInt32()));

        var brief = await SClientAsync(gateway.Echo.Port);
        Assert.Contains("Verification: OK", brief, StringComparison.Ordinal);
        Assert.Contains("Peer certificate: CN = gateway-test", brief, StringComparison.Ordinal);

        var listeners = (await admin.GetJsonAsync("/admin/listeners")).EnumerateArray().ToDictionary(l => l.Str("protocol"), l => l.GetProperty("tls").GetBoolean());
        Assert.Equal((true, true, true), (listeners["echo"], listeners["rpc"], listeners["ftp"])); // FTP: AUTH TLS offered (the default with a certificate)

        // The handlers and the registry see an ordinary connection: counted, listed, its requests reported.
        var metrics = await admin.MetricsAsync(m => AdminApi.SumOf(m, "gateway_request_duration_seconds_count", "protocol=\"rpc\"") >= 1
                                                    && AdminApi.SumOf(m, "gateway_tls_handshakes_total") >= 3);
        Assert.Equal(1, AdminApi.SumOf(metrics, "gateway_request_duration_seconds_count", "protocol=\"rpc\"", "operation=\"ping\""));

        // Every handshake is counted in the Gateway meter, a prefork worker's too (Kestrel's meter stays in the worker).
        Assert.Equal((2d, 1d, 0d), (
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "protocol=\"echo\"", $"model=\"{model}\"", "channel=\"connection\"", "outcome=\"ok\""),
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "protocol=\"rpc\"", "outcome=\"ok\""),
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "outcome=\"failed\"")));
    }

    [Fact]
    public async Task APlaintextClientOnATlsPortIsClosedWithoutAnAnswerAndTheFailureIsCounted()
    {
        await MakeCertificateAsync("gateway-test", CertificatePath, KeyPath);
        await using var gateway = await StartAsync("kestrel");
        using var admin = new AdminApi(gateway);
        using (var plain = await TcpClients.ConnectAsync(gateway.Rpc))
        {
            var body = """{"in":"ping","params":"plaintext","id":1}"""u8.ToArray();
            await plain.SendAsync(BitConverter.GetBytes(body.Length).Concat(body).ToArray(), SocketFlags.None);
            Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(plain, TimeSpan.FromSeconds(20)));
        }

        var metrics = await admin.MetricsAsync(m => AdminApi.SumOf(m, "kestrel_tls_handshake_duration_seconds_count", $"server_port=\"{gateway.Rpc.Port}\"", "error_type=") >= 1);
        Assert.Equal(1, AdminApi.SumOf(metrics, "kestrel_tls_handshake_duration_seconds_count", $"server_port=\"{gateway.Rpc.Port}\"", "error_type="));
        Assert.Equal(0, AdminApi.SumOf(metrics, "gateway_request_duration_seconds_count", "protocol=\"rpc\""));
        Assert.Equal(1, AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "protocol=\"rpc\"", "outcome=\"failed\""));

        // The next client, speaking TLS, is served; its handshake counts as a success.
        Assert.Equal("pong", (await ClientAsync(gateway.Rpc.Port, "rpc")).GetProperty("answer").Str("out"));
        metrics = await admin.MetricsAsync(m => AdminApi.SumOf(m, "kestrel_tls_handshake_duration_seconds_count", $"server_port=\"{gateway.Rpc.Port}\"", "tls_protocol_version=\"1.3\"") == 1);
        Assert.Equal((1d, 1d), (
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "protocol=\"rpc\"", "outcome=\"ok\""),
            AdminApi.SumOf(metrics, "gateway_tls_handshakes_total", "protocol=\"rpc\"", "outcome=\"failed\"")));
    }

    [Fact]
    public async Task AClientThatNeverFinishesItsHandshakeIsClosedAfterTenSeconds()
    {
        await MakeCertificateAsync("gateway-test", CertificatePath, KeyPath);
        await using var gateway = await StartAsync("kestrel");
        using var admin = new AdminApi(gateway);
        using var silent = await TcpClients.ConnectAsync(gateway.Echo);
        await silent.SendAsync(new byte[] { 0x16, 0x03, 0x01 }, SocketFlags.None); // the start of a ClientHello, then nothing
        var started = Stopwatch.StartNew();
        Assert.Equal(0, await TcpClients.ReadUntilClosedAsync(silent, TimeSpan.FromSeconds(60)));
        Assert.True(started.Elapsed > TimeSpan.FromSeconds(5), $"closed after {started.Elapsed}: before the handshake timeout");
        await admin.MetricsAsync(m => AdminApi.SumOf(m, "kestrel_tls_handshake_duration_seconds_count", $"server_port=\"{gateway.Echo.Port}\"", "error_type=") == 1);
    }

    [Fact]
    public async Task ARenewedCertificateServesNewConnectionsWithoutARestartAndABrokenOneIsRefused()
    {
        await MakeCertificateAsync("gateway-first", CertificatePath, KeyPath);
        await using var gateway = await StartAsync("kestrel");
        await using var before = await RpcConnection.OpenTlsAsync(gateway.Rpc, CertificatePath);

        // Replaced as cert-manager and a Kubernetes Secret do: new files renamed over the old ones.
        await MakeCertificateAsync("gateway-renewed", CertificatePath + ".new", KeyPath + ".new");
        File.Move(KeyPath + ".new", KeyPath, overwrite: true);
        File.Move(CertificatePath + ".new", CertificatePath, overwrite: true);
        Assert.True(await gateway.LogsAsync("TLS certificate reloaded: CN=gateway-renewed", TimeSpan.FromSeconds(20)), gateway.Output);
        Assert.Equal("gateway-renewed", (await ClientAsync(gateway.Echo.Port, "echo")).Str("subject"));
        Assert.Equal("still here", (await before.Client.CallAsync("ping", "still here")).Result.GetString()); // made before: unaffected

        // A broken file does not take TLS down: the renewed certificate stays and the problem is logged.
        var renewed = Path.Combine(_directory.FullName, "renewed.crt");
        File.Copy(CertificatePath, renewed);
        await File.WriteAllTextAsync(CertificatePath, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
        Assert.True(await gateway.LogsAsync("TLS certificate not reloaded, the previous one stays", TimeSpan.FromSeconds(20)), gateway.Output);
        Assert.Equal("gateway-renewed", (await ClientAsync(gateway.Echo.Port, "echo", trusted: renewed)).Str("subject"));
    }

    [Fact]
    public async Task APkcs12FileWithItsPasswordWorksToo()
    {
        await MakeCertificateAsync("gateway-pfx", CertificatePath, KeyPath);
        var pfx = Path.Combine(_directory.FullName, "tls.pfx");
        await OpensslAsync("pkcs12", "-export", "-in", CertificatePath, "-inkey", KeyPath, "-out", pfx, "-passout", "pass:s3cret-pfx");
        await using var gateway = await GatewayProcess.StartAsync([
            .. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Echo:Tls=true",
            $"--Gateway:Tls:CertificatePath={pfx}", "--Gateway:Tls:Password=s3cret-pfx",
        ]);
        Assert.Equal(("gateway-pfx", "hi"), ((await ClientAsync(gateway.Echo.Port, "echo", "hi")).Str("subject"), (await ClientAsync(gateway.Echo.Port, "echo", "hi")).Str("answer")));
        Assert.DoesNotContain("s3cret-pfx", gateway.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task WithoutACertificateTlsIsOffAndTheLogSaysSo()
    {
        await using var gateway = await GatewayProcess.StartAsync();
        Assert.True(await gateway.LogsAsync("TLS is off: no certificate (Gateway:Tls:CertificatePath)", TimeSpan.FromSeconds(5)), gateway.Output);
        Assert.DoesNotContain(", TLS)", gateway.Output, StringComparison.Ordinal);
    }

    private Task<GatewayProcess> StartAsync(string model) => GatewayProcess.StartAsync([
        .. GatewayProcess.LoopbackArgs,
        $"--Gateway:Listeners:Echo:Model={model}", "--Gateway:Listeners:Echo:Tls=true",
        $"--Gateway:Listeners:Rpc:Model={model}", "--Gateway:Listeners:Rpc:Tls=true",
        "--Gateway:Workers:Count=2",
        $"--Gateway:Tls:CertificatePath={CertificatePath}", $"--Gateway:Tls:KeyPath={KeyPath}",
    ]);

    /// <summary>A self-signed P-256 certificate for 127.0.0.1, by openssl.</summary>
    internal static Task<string> MakeCertificateAsync(string commonName, string certificate, string key) => OpensslAsync(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", $"/CN={commonName}", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key, "-out", certificate);

    internal static async Task<string> OpensslAsync(params string[] arguments)
    {
        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(Command("openssl", arguments), limit: TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"openssl {string.Join(' ', arguments)}: {stdout}{stderr}");
        return stdout + stderr;
    }

    private async Task<JsonElement> ClientAsync(int port, string mode, string text = "hello over tls", string? trusted = null)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "Scripts", "tls_client.py");
        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(
            Command("python3", script, "127.0.0.1", port.ToString(System.Globalization.CultureInfo.InvariantCulture), trusted ?? CertificatePath, mode, text),
            limit: TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"tls_client.py {mode}: {stdout}{stderr}");
        return JsonDocument.Parse(stdout).RootElement.Clone();
    }

    /// <summary>`openssl s_client -brief` against the port, verifying the certificate and the address.</summary>
    private async Task<string> SClientAsync(int port)
    {
        var start = Command("openssl", "s_client", "-connect", $"127.0.0.1:{port}", "-brief", "-CAfile", CertificatePath,
            "-verify_return_error", "-verify_ip", "127.0.0.1");
        var (code, stdout, stderr) = await GatewayProcess.RunToExitAsync(start, input: "", limit: TimeSpan.FromMinutes(1));
        Assert.True(code == 0, $"openssl s_client: {stdout}{stderr}");
        return stdout + stderr;
    }

    internal static ProcessStartInfo Command(string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        return start;
    }
}
