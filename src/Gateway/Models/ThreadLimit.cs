using System.Globalization;
using Gateway.Models.Native;

namespace Gateway.Models;

/// <summary>
/// How many more threads the kernel lets this process start, as far as it can be read: the pids controller of
/// the process's cgroup — <c>pids.max</c> less <c>pids.current</c> at each level up to the top of the hierarchy
/// (a container's <c>--pids-limit</c>, a Kubernetes pod's PID limit), cgroup v2 or v1 — and RLIMIT_NPROC, which
/// binds every user but root. Both count threads, not only processes. Past the limit, starting a thread fails
/// (EAGAIN, which .NET reports as <see cref="OutOfMemoryException"/>).
/// </summary>
internal static class ThreadLimit
{
    /// <summary>The room left now and what sets it (for the log); null when nothing limits threads but memory.</summary>
    public static (long Room, string Source)? Read()
    {
        (long Room, string Source)? tightest = null;
        foreach (var directory in PidsCgroups())
        {
            // A limit anywhere above us applies too; each level's room is its max less what its whole subtree uses.
            for ((string Path, string MountPoint)? level = directory; level is not null; level = Parent(level.Value))
            {
                if (ReadNumber(Path.Combine(level.Value.Path, "pids.max")) is { } max
                    && ReadNumber(Path.Combine(level.Value.Path, "pids.current")) is { } current
                    && (tightest is null || max - current < tightest.Value.Room))
                {
                    tightest = (max - current, $"pids.max {max} with {current} in use in {level.Value.Path}");
                }
            }
        }

        if (Libc.EffectiveUserId() != 0 && Libc.GetResourceLimit(Libc.RlimitNproc, out var nproc).Ok && nproc.Current != Libc.RlimInfinity)
        {
            // The user's other processes count too, and cannot be seen cheaply: this process's own threads at least.
            var own = ReadThreadCount() ?? 0;
            var room = (long)Math.Min(nproc.Current, long.MaxValue) - own;
            if (tightest is null || room < tightest.Value.Room)
            {
                tightest = (room, $"RLIMIT_NPROC {nproc.Current} with {own} threads of this process");
            }
        }

        return tightest;
    }

    /// <summary>This process's cgroup directories of the pids controller: v2 (the unified hierarchy) and v1.</summary>
    private static IEnumerable<(string Path, string MountPoint)> PidsCgroups()
    {
        string[] memberships, mounts;
        try
        {
            memberships = File.ReadAllLines("/proc/self/cgroup");
            mounts = File.ReadAllLines("/proc/self/mountinfo");
        }
        catch (IOException)
        {
            yield break;
        }
        catch (UnauthorizedAccessException)
        {
            yield break;
        }

        foreach (var line in memberships)
        {
            // hierarchy-id:controllers:path — "0::/path" for v2, "8:pids:/path" for the v1 pids hierarchy.
            var parts = line.Split(':', 3);
            if (parts.Length != 3)
            {
                continue;
            }

            var v2 = parts[0] == "0" && parts[1].Length == 0;
            if (!v2 && !parts[1].Split(',').Contains("pids"))
            {
                continue;
            }

            foreach (var (root, mountPoint) in CgroupMounts(mounts, v2))
            {
                // The mount shows the hierarchy from its root (a container's own cgroup, with or without a cgroup
                // namespace): the process's path below that root is where its files are.
                var path = parts[2];
                var relative = root == "/" ? path : path.StartsWith(root, StringComparison.Ordinal) ? path[root.Length..] : null;
                if (relative is null)
                {
                    continue;
                }

                var directory = Path.Join(mountPoint, relative.TrimStart('/'));
                if (Directory.Exists(directory))
                {
                    yield return (directory.TrimEnd('/'), mountPoint.TrimEnd('/'));
                }
            }
        }
    }

    /// <summary>The mounts of the cgroup2 file system, or of the cgroup v1 hierarchy that has the pids controller: (root, mount point).</summary>
    private static IEnumerable<(string Root, string MountPoint)> CgroupMounts(string[] mountInfo, bool v2)
    {
        foreach (var line in mountInfo)
        {
            // id parent major:minor root mount-point options [optional fields...] - fstype source super-options
            var separator = line.IndexOf(" - ", StringComparison.Ordinal);
            if (separator < 0)
            {
                continue;
            }

            var fields = line[..separator].Split(' ');
            var tail = line[(separator + 3)..].Split(' ');
            if (fields.Length < 5 || tail.Length < 3)
            {
                continue;
            }

            var matches = v2 ? tail[0] == "cgroup2" : tail[0] == "cgroup" && tail[2].Split(',').Contains("pids");
            if (matches)
            {
                yield return (Unescape(fields[3]), Unescape(fields[4]));
            }
        }
    }

    private static (string Path, string MountPoint)? Parent((string Path, string MountPoint) level) =>
        level.Path.Length > level.MountPoint.Length && Path.GetDirectoryName(level.Path) is { } parent
            ? (parent, level.MountPoint)
            : null;

    /// <summary>A file holding one number; null for "max", a missing file or anything else.</summary>
    private static long? ReadNumber(string path)
    {
        try
        {
            return long.TryParse(File.ReadAllText(path).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static long? ReadThreadCount()
    {
        try
        {
            return File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("Threads:", StringComparison.Ordinal)) is { } line
                && long.TryParse(line["Threads:".Length..].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var threads)
                ? threads
                : null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    /// <summary>mountinfo escapes space, tab, newline and backslash as octal (\040 ...).</summary>
    private static string Unescape(string field) =>
        field.Contains('\\', StringComparison.Ordinal)
            ? System.Text.RegularExpressions.Regex.Replace(field, @"\\([0-7]{3})", m => ((char)Convert.ToInt32(m.Groups[1].Value, 8)).ToString())
            : field;
}
