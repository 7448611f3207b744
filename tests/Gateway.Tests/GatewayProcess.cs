using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Tests;

/// <summary>
/// The real gateway binary as a child process on ephemeral loopback ports. It learns the bound ports from
/// the gateway's "listening on" log lines. Disposing stops the process by its own id, even when a test failed.
/// </summary>
internal sealed partial class GatewayProcess : IAsyncDisposable
{
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private readonly Process _process;
    private readonly StringBuilder _output = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<string, IPEndPoint> _endpoints = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Every listener on 127.0.0.1 with a port the system picks.</summary>
    public static readonly string[] LoopbackArgs =
    [
        "--Gateway:Listeners:Echo:Address=127.0.0.1", "--Gateway:Listeners:Echo:Port=0",
        "--Gateway:Listeners:Rpc:Address=127.0.0.1", "--Gateway:Listeners:Rpc:Port=0",
        "--Gateway:Listeners:Ftp:Address=127.0.0.1", "--Gateway:Listeners:Ftp:Port=0",
        "--Gateway:Admin:Url=http://127.0.0.1:0",
    ];

    private GatewayProcess(ProcessStartInfo start)
    {
        _process = new Process { StartInfo = start, EnableRaisingEvents = true };
        _process.OutputDataReceived += (_, e) => OnLine(e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(e.Data);
        _process.Exited += (_, _) => _started.TrySetException(new InvalidOperationException($"gateway exited before it started:\n{Output}"));
    }

    public static string Metadata(string key) =>
        typeof(GatewayProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    public static string GatewayDll => Metadata("GatewayDll");

    public int Pid => _process.Id;

    public IPEndPoint Echo => Endpoint("echo");

    public IPEndPoint Rpc => Endpoint("rpc");

    public Uri Admin => new($"http://{Endpoint("admin")}");

    public string Output
    {
        get
        {
            lock (_output)
            {
                return _output.ToString();
            }
        }
    }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    /// <summary>Starts the gateway binary and waits until it has logged that it started.</summary>
    public static Task<GatewayProcess> StartAsync(IEnumerable<string>? args = null, IReadOnlyDictionary<string, string>? environment = null) =>
        StartAsync(Command(args ?? LoopbackArgs, environment));

    /// <summary>Any command that ends up running the gateway (e.g. `dotnet run`), waited for in the same way.</summary>
    public static async Task<GatewayProcess> StartAsync(ProcessStartInfo start)
    {
        var gateway = new GatewayProcess(start);
        gateway._process.Start();
        gateway._process.BeginOutputReadLine();
        gateway._process.BeginErrorReadLine();
        try
        {
            await gateway._started.Task.WaitAsync(StartTimeout);
        }
        catch
        {
            await gateway.DisposeAsync();
            throw;
        }

        return gateway;
    }

    /// <summary>Runs the gateway expecting it to stop by itself (e.g. on bad configuration).</summary>
    public static Task<(int ExitCode, string Stdout, string Stderr)> RunToExitAsync(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null) =>
        RunToExitAsync(Command(args, environment));

    /// <summary>
    /// Runs any child process to its end, with <paramref name="input"/> on its stdin when given, killing it (by
    /// its id) if it outlives the timeout (a minute unless given).
    /// </summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunToExitAsync(ProcessStartInfo start, string? input = null, TimeSpan? limit = null)
    {
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        start.RedirectStandardInput = input is not null;
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (input is not null)
        {
            await process.StandardInput.WriteAsync(input);
            process.StandardInput.Close();
        }

        using var timeout = new CancellationTokenSource(limit ?? StartTimeout);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    public static ProcessStartInfo Command(IEnumerable<string> args, IReadOnlyDictionary<string, string>? environment = null)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            // The binary's own folder, where the build put its copy of appsettings.json.
            WorkingDirectory = Path.GetDirectoryName(GatewayDll)!,
        };
        start.ArgumentList.Add(GatewayDll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }

        return start;
    }

    /// <summary>SIGTERM, as Kubernetes and systemd stop a process.</summary>
    public void Terminate()
    {
        if (Kill(_process.Id, SigTerm) != 0)
        {
            throw new InvalidOperationException($"kill({_process.Id}, SIGTERM) failed: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>Whether the gateway logs <paramref name="text"/> within the timeout (its console logger writes asynchronously).</summary>
    public async Task<bool> LogsAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (DateTime.UtcNow > deadline)
            {
                return false;
            }

            await Task.Delay(50);
        }

        return true;
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cancel = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cancel.Token);
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }

            using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await _process.WaitForExitAsync(cancel.Token);
        }
        finally
        {
            _process.Dispose();
        }
    }

    public IPEndPoint Endpoint(string name)
    {
        lock (_endpoints)
        {
            return _endpoints.TryGetValue(name, out var endpoint)
                ? endpoint
                : throw new InvalidOperationException($"the gateway logged no '{name} listening on' line:\n{Output}");
        }
    }

    private void OnLine(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_output)
        {
            _output.AppendLine(line);
        }

        if (Listening().Match(line) is { Success: true } match)
        {
            lock (_endpoints)
            {
                // Every interface ("*") or localhost: the tests reach it on 127.0.0.1.
                var endpoint = match.Groups["endpoint"].Value;
                var port = int.Parse(endpoint[(endpoint.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
                _endpoints[match.Groups["name"].Value] = endpoint.StartsWith("*:", StringComparison.Ordinal) || endpoint.StartsWith("localhost:", StringComparison.Ordinal)
                    ? new IPEndPoint(IPAddress.Loopback, port)
                    : IPEndPoint.Parse(endpoint);
            }
        }
        else if (line.Contains("Gateway started", StringComparison.Ordinal))
        {
            _started.TrySetResult();
        }
    }

    [GeneratedRegex(@"(?<name>\w+) listening on (?:http://)?(?<endpoint>\S+:\d+)")]
    private static partial Regex Listening();

    private const int SigTerm = 15;

    /// <summary>kill(2): a signal to one process of the test's own (a gateway or one of its workers), by pid.</summary>
    public static int Signal(int pid, int signal) => Kill(pid, signal);

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
