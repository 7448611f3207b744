using System.Diagnostics;
using System.Text;
using System.Text.Json;

namespace Gateway.Lab;

/// <summary>
/// Idle connections held by several LoadGen processes at once (<c>--connections 0</c>), each from its own loopback
/// source address and so its own ephemeral ports: a crowd larger than one process's descriptor limit allows.
/// Every share is stopped by its own process id, also when opening fails.
/// </summary>
internal sealed class IdleCrowd : IAsyncDisposable
{
    private const string Holding = "LoadGen: holding";

    /// <summary>How long a share holds at most, should the lab never release it.</summary>
    private static readonly TimeSpan MaxHold = TimeSpan.FromMinutes(30);

    private readonly List<Share> _shares = [];

    private IdleCrowd()
    {
    }

    public int Count { get; private init; }

    /// <summary>
    /// <paramref name="count"/> idle connections to <paramref name="port"/> over <paramref name="shares"/> LoadGen
    /// processes, returned once every share holds all of its own; throws, with the shares' words, when one cannot.
    /// </summary>
    public static async Task<IdleCrowd> OpenAsync(string loadGenDll, string? cpus, int port, int count, int shares, TimeSpan patience)
    {
        var crowd = new IdleCrowd { Count = count };
        try
        {
            for (var k = 0; k < shares; k++)
            {
                var size = count / shares + (k < count % shares ? 1 : 0);
                var info = Pinned.Command(cpus, "dotnet",
                [
                    loadGenDll, "--port", $"{port}", "--connections", "0", "--idle", $"{size}",
                    "--idle-first-source", $"{2 + k}", "--idle-sources", "1",
                    "--idle-timeout", $"{(int)patience.TotalSeconds}", "--duration", $"{(int)MaxHold.TotalSeconds}",
                ]);
                info.RedirectStandardInput = true;
                crowd._shares.Add(new Share(Process.Start(info) ?? throw new InvalidOperationException("could not start LoadGen")));
            }

            using var deadline = new CancellationTokenSource(patience + TimeSpan.FromSeconds(30));
            foreach (var share in crowd._shares)
            {
                if (!await share.HoldingAsync(deadline.Token))
                {
                    var errors = share.Process.HasExited ? await share.Errors : "(still opening)";
                    throw new InvalidOperationException($"a share of {count} idle connections did not open: {errors.Trim()}");
                }
            }

            return crowd;
        }
        catch
        {
            await crowd.DisposeAsync();
            throw;
        }
    }

    /// <summary>Ends the hold (each share's stdin closed) and returns how many of the crowd were still open then.</summary>
    public async Task<int> ReleaseAsync()
    {
        var open = 0;
        foreach (var share in _shares)
        {
            share.Process.StandardInput.Close();
        }

        foreach (var share in _shares)
        {
            var report = (await share.Output.WaitAsync(TimeSpan.FromSeconds(60))).Split('\n').LastOrDefault(l => l.StartsWith('{'));
            using var json = report is null ? null : JsonDocument.Parse(report);
            open += json?.RootElement.GetProperty("idle_open_at_end").GetInt32() ?? 0;
        }

        return open;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var share in _shares)
        {
            try
            {
                share.Process.Kill(); // by its own id; released shares have exited already
            }
            catch (InvalidOperationException)
            {
                // exited meanwhile
            }

            await share.Process.WaitForExitAsync();
            share.Process.Dispose();
        }
    }

    /// <summary>One LoadGen process of the crowd: its report (stdout) and its words (stderr), read as they come.</summary>
    private sealed class Share
    {
        private readonly TaskCompletionSource<bool> _holding = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Share(Process process)
        {
            Process = process;
            Output = process.StandardOutput.ReadToEndAsync();
            Errors = ReadErrorsAsync();
        }

        public Process Process { get; }

        public Task<string> Output { get; }

        public Task<string> Errors { get; }

        /// <summary>True once the share holds all its connections; false when it ended without (or the wait did).</summary>
        public async Task<bool> HoldingAsync(CancellationToken deadline)
        {
            try
            {
                return await _holding.Task.WaitAsync(deadline);
            }
            catch (OperationCanceledException)
            {
                return false;
            }
        }

        private async Task<string> ReadErrorsAsync()
        {
            var text = new StringBuilder();
            while (await Process.StandardError.ReadLineAsync() is { } line)
            {
                if (line.StartsWith(Holding, StringComparison.Ordinal))
                {
                    _holding.TrySetResult(true);
                }
                else
                {
                    text.AppendLine(line);
                }
            }

            _holding.TrySetResult(false);
            return text.ToString();
        }
    }
}
