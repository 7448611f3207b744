using System.Diagnostics;
using System.Globalization;
using Gateway.Protocols.Ftp;
using Xunit.Abstractions;

namespace Gateway.Tests;

/// <summary>The FTP fixture with fast login throttling (0.05 s per failure) and the default lockout (10 failures per address).</summary>
public sealed class FtpLoginPolicyFixture : FtpFixture
{
    protected override string[] ExtraArgs => ["--Gateway:Listeners:Ftp:LoginFailureDelaySeconds=0.05"];
}

/// <summary>
/// alice and bob hashed with 3 million PBKDF2 rounds (about a second here), so the hash dominates a login; no
/// failure delay and no practical lockout, so every wrong password costs exactly one verification; one
/// verification at a time and none waiting.
/// </summary>
public sealed class FtpSlowHashFixture : FtpFixture
{
    private static readonly string AliceHash = FtpPasswordHasher.Hash("alice-pw", 3_000_000);
    private static readonly string BobHash = FtpPasswordHasher.Hash("bob-pw", 3_000_000);

    protected override string[] ExtraArgs =>
    [
        $"--Gateway:Listeners:Ftp:Users:0:PasswordHash={AliceHash}", $"--Gateway:Listeners:Ftp:Users:1:PasswordHash={BobHash}",
        "--Gateway:Listeners:Ftp:LoginFailureDelaySeconds=0", "--Gateway:Listeners:Ftp:MaxLoginFailuresPerAddress=1000",
        "--Gateway:Listeners:Ftp:MaxConcurrentLogins=1", "--Gateway:Listeners:Ftp:MaxQueuedLogins=0",
    ];
}

/// <summary>alice hashed with 5 million rounds; room for 64 logins waiting.</summary>
public sealed class FtpLoginStormFixture : FtpFixture
{
    private static readonly string AliceHash = FtpPasswordHasher.Hash("alice-pw", 5_000_000);

    protected override string[] ExtraArgs =>
    [
        $"--Gateway:Listeners:Ftp:Users:0:PasswordHash={AliceHash}", "--Gateway:Listeners:Ftp:MaxLoginFailuresPerAddress=1000",
        "--Gateway:Listeners:Ftp:MaxQueuedLogins=64",
    ];
}

/// <summary>The tests that keep cores busy with PBKDF2 on purpose run one at a time, so their timings are their own.</summary>
[CollectionDefinition(Name)]
public sealed class FtpHashingTests
{
    public const string Name = "ftp hashing";
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
            ftp.Port.ToString(CultureInfo.InvariantCulture), check, gateway.Rpc.Port.ToString(CultureInfo.InvariantCulture),
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

    public static double Logins(string metrics, string outcome, string check) =>
        AdminApi.SumOf(metrics, "gateway_logins_total", "protocol=\"ftp\"", $"outcome=\"{outcome}\"", $"check=\"{check}\"");
}

public sealed class FtpLoginPolicyTests(FtpLoginPolicyFixture fixture, ITestOutputHelper output) : IClassFixture<FtpLoginPolicyFixture>
{
    [Fact]
    public async Task OtherAccountsLoginsBetweenWrongGuessesDoNotLiftTheAddressLockout()
    {
        await FtpLoginChecks.RunAsync(fixture.Gateway, "lockout_survives_other_logins", output);
        using var admin = new AdminApi(fixture.Gateway);
        var metrics = await admin.MetricsAsync(m => FtpLoginChecks.Logins(m, "locked_out", "none") >= 1);
        Assert.True(FtpLoginChecks.Logins(metrics, "failed", "hash") >= 10, metrics);
    }

    [Fact]
    public Task AnonymousLoginsDoNotResetTheConnectionsFailureCount() =>
        FtpLoginChecks.RunAsync(fixture.Gateway, "connection_failures_survive_anonymous", output);

    [Fact]
    public async Task ASecondLoginComesFromTheCacheAndAWrongPasswordIsStillHashed()
    {
        using var admin = new AdminApi(fixture.Gateway);
        var before = await admin.MetricsAsync();
        await FtpLoginChecks.RunAsync(fixture.Gateway, "cache_then_wrong_password", output);
        var after = await admin.MetricsAsync(m => FtpLoginChecks.Logins(m, "failed", "hash") > FtpLoginChecks.Logins(before, "failed", "hash"));
        Assert.Equal(
            (Hashed: 1, Cached: 1, Failed: 1),
            (Hashed: Delta("ok", "hash"), Cached: Delta("ok", "cache"), Failed: Delta("failed", "hash")));

        int Delta(string outcome, string check) => (int)(FtpLoginChecks.Logins(after, outcome, check) - FtpLoginChecks.Logins(before, outcome, check));
    }
}

[Collection(FtpHashingTests.Name)]
public sealed class FtpSlowHashTests(FtpSlowHashFixture fixture, ITestOutputHelper output) : IClassFixture<FtpSlowHashFixture>
{
    [Fact]
    public Task AWrongPasswordTakesAsLongForAMissingUserAsForAnExistingOne() =>
        FtpLoginChecks.RunAsync(fixture.Gateway, "same_time_for_missing_user", output);

    [Fact]
    public async Task APassBeyondTheQueueGets421AtOnceAndIsCounted()
    {
        await FtpLoginChecks.RunAsync(fixture.Gateway, "queue_full_421", output);
        using var admin = new AdminApi(fixture.Gateway);
        await admin.MetricsAsync(m => FtpLoginChecks.Logins(m, "queue_full", "none") >= 1);
    }
}

[Collection(FtpHashingTests.Name)]
public sealed class FtpLoginStormTests(FtpLoginStormFixture fixture, ITestOutputHelper output) : IClassFixture<FtpLoginStormFixture>
{
    /// <summary>
    /// 40 expensive PASS at once must not hold up another protocol: RPC pings answer within 2 s each. Then the
    /// FTP connections close, and what they left waiting is dropped: nothing is pending within 10 s (hashing it
    /// all would take 20 × 1.4 s on this fixture's two hashing threads).
    /// </summary>
    [Fact]
    public async Task RpcAnswersDuringALoginStormAndClosedConnectionsLeaveTheQueue()
    {
        await FtpLoginChecks.RunAsync(fixture.Gateway, "storm_ping", output);
        using var admin = new AdminApi(fixture.Gateway);
        await admin.MetricsAsync(m => AdminApi.Series(m, "gateway_logins_pending").Any() && AdminApi.SumOf(m, "gateway_logins_pending") == 0,
            TimeSpan.FromSeconds(10));
    }
}

/// <summary>The login settings refuse values out of range at start, with one line naming the key.</summary>
public sealed class FtpLoginSettingsTests
{
    [Theory]
    [InlineData("MaxConcurrentLogins=0", "need 1-64")]
    [InlineData("MaxConcurrentLogins=65", "need 1-64")]
    [InlineData("MaxQueuedLogins=-1", "need 0-100000")]
    [InlineData("LoginQueueTimeoutSeconds=0", "need 1-600 s")]
    [InlineData("LoginCacheSeconds=-1", "need 0 (off) to 86400 s")]
    public async Task AnOutOfRangeLoginSettingStopsTheStartNamingItsKey(string setting, string reason)
    {
        var (exitCode, _, stderr) = await GatewayProcess.RunToExitAsync([.. GatewayProcess.LoopbackArgs, "--Gateway:Listeners:Ftp:" + setting]);
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(exitCode == 2 && lines.Length == 1, $"exit {exitCode}:\n{stderr}");
        Assert.Contains($"Gateway:Listeners:Ftp:{setting.Split('=')[0]}: {reason}", lines[0], StringComparison.Ordinal);
    }
}
