using System.Diagnostics;

namespace Gateway.Lab;

/// <summary>How the lab starts a program: with its output redirected, under <c>taskset -c CPUS</c> when pinned.</summary>
internal static class Pinned
{
    public static ProcessStartInfo Command(string? cpus, string file, IEnumerable<string> arguments)
    {
        var info = new ProcessStartInfo
        {
            FileName = cpus is null ? file : "taskset",
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        string[] prefix = cpus is null ? [] : ["-c", cpus, file];
        foreach (var argument in prefix.Concat(arguments))
        {
            info.ArgumentList.Add(argument);
        }

        return info;
    }

    /// <summary>Runs a tool to its end and returns what it printed (both streams read, so neither can fill up and stall it).</summary>
    public static async Task<string> OutputAsync(ProcessStartInfo info)
    {
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {info.FileName}");
        var stderr = process.StandardError.ReadToEndAsync();
        var stdout = await process.StandardOutput.ReadToEndAsync();
        await process.WaitForExitAsync();
        return process.ExitCode == 0 ? stdout : throw new InvalidOperationException($"{string.Join(' ', info.ArgumentList)} exited {process.ExitCode}: {await stderr}");
    }
}
