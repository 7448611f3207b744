namespace Gateway.Workers;

/// <summary>A child's CPU time and resident memory, read from /proc the way <c>ps</c> does.</summary>
internal static class ProcessUsage
{
    /// <summary>The kernel's clock tick (USER_HZ): 100 on every Linux ABI .NET runs on.</summary>
    private const double TicksPerSecond = 100;

    public static (double CpuSeconds, long RssBytes) Read(int pid)
    {
        if (pid <= 0)
        {
            return (0, 0);
        }

        try
        {
            // /proc/<pid>/stat: "pid (comm) state ppid ..."; comm may hold spaces, so count fields after the ')'.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            var cpuTicks = long.Parse(fields[11], System.Globalization.CultureInfo.InvariantCulture) // utime (field 14)
                + long.Parse(fields[12], System.Globalization.CultureInfo.InvariantCulture); // stime (field 15)
            var rssPages = long.Parse(fields[21], System.Globalization.CultureInfo.InvariantCulture); // rss (field 24)
            return (Math.Round(cpuTicks / TicksPerSecond, 2), rssPages * Environment.SystemPageSize);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return (0, 0); // it exited meanwhile
        }
    }
}
