using System.Runtime.InteropServices;

namespace Gateway.LoadGen;

/// <summary>The process's descriptor limit (RLIMIT_NOFILE): every idle connection holds one.</summary>
internal static class FileLimit
{
    /// <summary>
    /// Raises the soft limit to the hard limit and returns both as they then stand, or null where the limit
    /// cannot be read (not Linux).
    /// </summary>
    public static (ulong Soft, ulong Hard)? RaiseSoftToHard()
    {
        if (!OperatingSystem.IsLinux() || Libc.GetRLimit(Libc.RlimitNofile, out var limit) != 0)
        {
            return null;
        }

        if (limit.Current < limit.Maximum)
        {
            var raised = limit with { Current = limit.Maximum };
            if (Libc.SetRLimit(Libc.RlimitNofile, raised) == 0)
            {
                limit = raised;
            }
            else
            {
                Console.Error.WriteLine($"LoadGen: setrlimit(RLIMIT_NOFILE, {limit.Maximum}) failed, errno {Marshal.GetLastPInvokeError()}");
            }
        }

        return (limit.Current, limit.Maximum);
    }
}
