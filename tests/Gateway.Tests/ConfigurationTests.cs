using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests;

/// <summary>Bad settings stop the process at start with one line that names the key, never a stack trace.</summary>
public sealed class ConfigurationTests
{
    private static void AssertOneLineNaming(string stderr, params string[] expected)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line, got:\n{stderr}");
        foreach (var text in expected)
        {
            Assert.Contains(text, lines[0], StringComparison.Ordinal);
        }

        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--Gateway:Listeners:Rpc:Port=abc", "Gateway:Listeners:Rpc:Port", "not a TCP port")]
    [InlineData("--Gateway:Listeners:Echo:Port=65536", "Gateway:Listeners:Echo:Port", "not a TCP port")]
    [InlineData("--Gateway:Listeners:Rpc:Model=turbo", "Gateway:Listeners:Rpc:Model", "not a model")]
    [InlineData("--Gateway:Workers:MaxProcesses=-1", "Gateway:Workers:MaxProcesses", "0 (64 per core) or more")]
    [InlineData("--Gateway:Workers:Count=-2", "Gateway:Workers:Count", "0 (one per core) or more")]
    [InlineData("--Gateway:Models:ReactorThreads=-1", "Gateway:Models:ReactorThreads", "0 (one per two cores) to 256")]
    [InlineData("--Gateway:Listeners:Ftp:Enabled=true --Gateway:Listeners:Ftp:PassivePorts=80-90", "Gateway:Listeners:Ftp:PassivePorts", "1024-65535")]
    [InlineData("--Gateway:Listeners:Ftp:Enabled=true --Gateway:Listeners:Ftp:Users:0:Name=eve --Gateway:Listeners:Ftp:Users:0:PasswordHash=plain", "Gateway:Listeners:Ftp:Users:0:PasswordHash", "hash-password")]
    [InlineData("--Gateway:Listeners:Gopher:Port=70", "Gateway:Listeners:Gopher", "not a protocol")]
    [InlineData("--Gateway:Listeners:Echo:Address=somewhere", "Gateway:Listeners:Echo:Address", "not an IP address")]
    [InlineData("--Gateway:Limits:MaxFrameBytes=0", "Gateway:Limits:MaxFrameBytes", "between")]
    [InlineData("--Gateway:Limits:IdleTimeoutSeconds=soon", "Gateway:Limits:IdleTimeoutSeconds", "Int32")]
    [InlineData("--Gateway:Admin:Url=ftp://127.0.0.1:21", "Gateway:Admin:Url", "http://")]
    [InlineData("--Gateway:Workers:Mode=forking", "Gateway:Workers:Mode", "async, sync, per-connection")]
    [InlineData("--Gateway:Execution=threadpool", "Gateway:Execution", "inline, pool")]
    [InlineData("--Gateway:Listeners:Rpc:Tls=true", "Gateway:Listeners:Rpc:Tls", "Gateway:Tls:CertificatePath")]
    [InlineData("--Gateway:Listeners:Echo:Tls=yes", "Gateway:Listeners:Echo:Tls", "not true or false")]
    [InlineData("--Gateway:Listeners:Ftp:Tls=explicit", "Gateway:Listeners:Ftp:Tls", "needs a certificate")]
    [InlineData("--Gateway:Listeners:Ftp:Tls=implicit", "Gateway:Listeners:Ftp:Tls", "ImplicitTlsPort")]
    [InlineData("--Gateway:Listeners:Ftp:ImplicitTlsPort=990", "Gateway:Listeners:Ftp:ImplicitTlsPort", "needs a certificate")]
    [InlineData("--Gateway:Listeners:Ftp:Tls=maybe", "Gateway:Listeners:Ftp:Tls", "off, explicit, required")]
    [InlineData("--Gateway:Tls:KeyPath=/tmp/key.pem", "Gateway:Tls:CertificatePath", "no certificate")]
    [InlineData("--Gateway:Tls:CertificatePath=/nonexistent/cert.pem", "Gateway:Tls", "cannot load the certificate")]
    public async Task BadSettingExitsNonZeroWithOneLineNamingTheKey(string settings, string key, string reason)
    {
        var (exitCode, _, stderr) = await GatewayProcess.RunToExitAsync([.. GatewayProcess.LoopbackArgs, .. settings.Split(' ')]);
        Assert.Equal(2, exitCode);
        AssertOneLineNaming(stderr, key, reason);
    }

    [Fact]
    public async Task TwoListenersOnOnePortIsAClash()
    {
        string[] args =
        [
            .. GatewayProcess.LoopbackArgs,
            "--Gateway:Listeners:Echo:Port=7100", "--Gateway:Listeners:Rpc:Port=7100",
        ];
        var (exitCode, _, stderr) = await GatewayProcess.RunToExitAsync(args);
        Assert.Equal(2, exitCode);
        AssertOneLineNaming(stderr, "Gateway:Listeners:Rpc", "port 7100 is already taken by Gateway:Listeners:Echo");
    }

    [Fact]
    public async Task EnvironmentVariablesOverrideTheFile()
    {
        var environment = new Dictionary<string, string> { ["Gateway__Listeners__Rpc__Model"] = "epoll" };
        await using var gateway = await GatewayProcess.StartAsync(GatewayProcess.LoopbackArgs, environment);
        Assert.Matches(@"rpc listening on 127\.0\.0\.1:\d+ \(model epoll\)", gateway.Output);
    }

    [Theory]
    [InlineData("kestrel")]
    [InlineData("epoll")]
    public async Task PortAlreadyInUseExitsNonZeroNamingTheListener(string model)
    {
        using var squatter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        squatter.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        squatter.Listen();
        var port = ((IPEndPoint)squatter.LocalEndPoint!).Port;

        var (exitCode, _, stderr) = await GatewayProcess.RunToExitAsync([.. GatewayProcess.LoopbackArgs, $"--Gateway:Listeners:Rpc:Port={port}", $"--Gateway:Listeners:Rpc:Model={model}"]);
        Assert.Equal(1, exitCode);
        AssertOneLineNaming(stderr, "Gateway:Listeners:Rpc", $"127.0.0.1:{port}", "in use");
    }
}
