using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace Gateway.Tests;

/// <summary>The FTP fixture with fast login throttling (0.05 s per failure) and the default lockout (10 failures per address).</summary>
public sealed class FtpLoginPolicyFixture : FtpFixture
{
    protected override string[] ExtraArgs => ["--Gateway:Listeners:Ftp:LoginFailureDelaySeconds=0.05"];
}

internal static class FtpLoginChecks
{
    /// <summary>Runs one check of Scripts/ftp_login_checks.py against the gateway; returns what it printed.</summary>
    public static async Task<string> RunAsync(GatewayProcess gateway, string check, ITestOutputHelper output)
    {
        var ftp = gateway.Endpoint("ftp");
        var start = new ProcessStartInfo("python3");
        string[] args =
        [
            Path.Combine(AppContext.BaseDirectory, "Scripts", "ftp_login_checks.py"), ftp.Address.ToString(),
            ftp.Port.ToString(CultureInfo.InvariantCulture), check,
        ];
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(start, limit: TimeSpan.FromMinutes(3));
        output.WriteLine(stdout);
        Assert.True(exitCode == 0 && stdout.Contains($"ok {check}", StringComparison.Ordinal), $"ftplib check '{check}' failed:\n{stdout}\n{stderr}");
        return stdout;
    }
}

public sealed class FtpLoginPolicyTests(FtpLoginPolicyFixture fixture, ITestOutputHelper output) : IClassFixture<FtpLoginPolicyFixture>
{
    [Fact]
    public Task OtherAccountsLoginsBetweenWrongGuessesDoNotLiftTheAddressLockout() =>
        FtpLoginChecks.RunAsync(fixture.Gateway, "lockout_survives_other_logins", output);

    [Fact]
    public Task AnonymousLoginsDoNotResetTheConnectionsFailureCount() =>
        FtpLoginChecks.RunAsync(fixture.Gateway, "connection_failures_survive_anonymous", output);
}
