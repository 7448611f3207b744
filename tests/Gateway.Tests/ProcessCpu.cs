using System.Diagnostics;
using System.Globalization;

namespace Gateway.Tests;

/// <summary>The CPU time real processes have used, as the kernel counts it.</summary>
internal static class ProcessCpu
{
    /// <summary>User plus system CPU time of the processes, from /proc/&lt;pid&gt;/stat (a process gone counts nothing more).</summary>
    public static double Seconds(IEnumerable<int> pids)
    {
        double total = 0;
        foreach (var pid in pids)
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                // After the command: state is field 3 of stat(5), utime 14 and stime 15 — indexes 11 and 12 here.
                total += (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / (double)ClockTicksPerSecond;
            }
            catch (IOException)
            {
                // exited
            }
        }

        return total;
    }

    /// <summary>USER_HZ, which /proc reports CPU times in (100 on Linux unless built otherwise).</summary>
    private static readonly long ClockTicksPerSecond = ReadClockTicks();

    private static long ReadClockTicks()
    {
        var start = new ProcessStartInfo("getconf", "CLK_TCK") { RedirectStandardOutput = true, UseShellExecute = false };
        using var getconf = Process.Start(start)!;
        var text = getconf.StandardOutput.ReadToEnd();
        getconf.WaitForExit();
        return long.TryParse(text.Trim(), CultureInfo.InvariantCulture, out var ticks) && ticks > 0 ? ticks : 100;
    }

    /// <summary>Waits until the processes have used <paramref name="seconds"/> of CPU more than <paramref name="from"/>.</summary>
    public static async Task WaitForAsync(IEnumerable<int> pids, double from, double seconds, string failure, CancellationToken cancellationToken)
    {
        while (Seconds(pids) - from < seconds)
        {
            Assert.False(cancellationToken.IsCancellationRequested, failure);
            await Task.Delay(50, CancellationToken.None);
        }
    }
}
