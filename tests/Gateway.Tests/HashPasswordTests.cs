using System.Diagnostics;
using Gateway.Protocols.Ftp;

namespace Gateway.Tests;

/// <summary>`Gateway hash-password`: prints only the hash line for an FTP user's PasswordHash.</summary>
public sealed class HashPasswordTests
{
    [Fact]
    public async Task PrintsOnlyAHashOfTheGivenPassword()
    {
        var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(["hash-password", "s3cret pass"]);
        Assert.True(exitCode == 0, stderr);
        var line = Assert.Single(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(FtpPasswordHasher.Verify("s3cret pass", line), line);
        Assert.False(FtpPasswordHasher.Verify("s3cret", line));
    }

    [Fact]
    public async Task ReadsThePasswordFromStdinWhenNotGiven()
    {
        var start = GatewayProcess.Command(["hash-password"]);
        start.RedirectStandardInput = true;
        using var process = Process.Start(start)!;
        try
        {
            await process.StandardInput.WriteLineAsync("from stdin");
            process.StandardInput.Close();
            var stdout = await process.StandardOutput.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            await process.WaitForExitAsync(timeout.Token);
            Assert.Equal(0, process.ExitCode);
            Assert.True(FtpPasswordHasher.Verify("from stdin", stdout.Trim()), stdout);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill();
            }
        }
    }

    [Fact]
    public async Task TwoArgumentsIsAUsageError()
    {
        var (exitCode, stdout, stderr) = await GatewayProcess.RunToExitAsync(["hash-password", "a", "b"]);
        Assert.Equal(2, exitCode);
        Assert.Empty(stdout);
        Assert.Contains("usage: Gateway hash-password", stderr, StringComparison.Ordinal);
    }
}
