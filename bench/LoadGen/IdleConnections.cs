using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Gateway.LoadGen;

/// <summary>
/// Connections that are opened before the measured clients and then send nothing: the cost of holding many
/// connections shows in the measured ones. One source address has about 28k ephemeral ports, so on loopback
/// they are bound to 127.0.0.2, 127.0.0.3, ... in turn (or from another first address).
/// </summary>
internal sealed class IdleConnections : IDisposable
{
    // Connects in flight at once: enough to be quick, few enough not to overrun the server's listen backlog.
    private const int ConcurrentConnects = 256;

    private static readonly TimeSpan ProgressEvery = TimeSpan.FromSeconds(5);

    private readonly Socket[] _sockets;

    private IdleConnections(Socket[] sockets) => _sockets = sockets;

    public static IdleConnections None { get; } = new([]);

    public int Count => _sockets.Length;

    /// <summary>All <paramref name="count"/> connections, or null (after saying why on stderr) if they could not all be opened in time.</summary>
    public static async Task<IdleConnections?> OpenAsync(IPEndPoint endpoint, int count, int firstSource, int sources, TimeSpan timeout)
    {
        var bindSources = endpoint.AddressFamily == AddressFamily.InterNetwork && IPAddress.IsLoopback(endpoint.Address);
        var sockets = new Socket?[count];
        var next = -1;
        var opened = 0;
        string? fatal = null;
        string? lastError = null;
        using var giveUp = new CancellationTokenSource(timeout);
        var started = Stopwatch.GetTimestamp();

        async Task OpenSomeAsync()
        {
            for (int i; (i = Interlocked.Increment(ref next)) < count && !giveUp.IsCancellationRequested;)
            {
                var source = bindSources ? new IPAddress([127, 0, 0, (byte)(firstSource + i % sources)]) : null;
                // A retry only for what a busy server causes; the loop ends at the deadline.
                while (!giveUp.IsCancellationRequested)
                {
                    try
                    {
                        sockets[i] = await Tcp.ConnectAsync(endpoint, source, giveUp.Token);
                        Interlocked.Increment(ref opened);
                        break;
                    }
                    catch (SocketException e) when (e.SocketErrorCode is SocketError.ConnectionReset or SocketError.TimedOut or SocketError.TryAgain or SocketError.NoBufferSpaceAvailable)
                    {
                        lastError = e.Message;
                        await Task.Delay(100, CancellationToken.None);
                    }
                    catch (SocketException e)
                    {
                        fatal ??= $"connection {i} from {source?.ToString() ?? "any address"}: {e.Message} ({e.SocketErrorCode})";
                        await giveUp.CancelAsync();
                    }
                    catch (OperationCanceledException)
                    {
                        // The deadline, or another connection's fatal error.
                    }
                }
            }
        }

        using var progress = new PeriodicTimer(ProgressEvery);
        var reporting = ReportAsync();
        await Task.WhenAll(Enumerable.Range(0, Math.Min(ConcurrentConnects, count)).Select(_ => Task.Run(OpenSomeAsync)));
        progress.Dispose();
        await reporting;

        if (opened == count)
        {
            Console.Error.WriteLine($"idle: opened {count}/{count} in {RunClock.Seconds(Stopwatch.GetTimestamp() - started):F1} s");
            var idle = new IdleConnections(sockets!);
            if (idle.CountOpen() is var open && open < count)
            {
                // Not fatal here: the run's JSON and exit code report it; a server may also drop them later.
                Console.Error.WriteLine($"idle: {count - open} of {count} were already closed by the server");
            }

            return idle;
        }

        foreach (var socket in sockets)
        {
            socket?.Dispose();
        }

        var why = fatal ?? $"not all open within --idle-timeout {timeout.TotalSeconds} s{(lastError is null ? "" : $" (last error: {lastError})")}";
        Console.Error.WriteLine($"idle: opened only {opened}/{count} idle connections to {endpoint}: {why}; giving up");
        return null;

        async Task ReportAsync()
        {
            while (await progress.WaitForNextTickAsync())
            {
                Console.Error.WriteLine($"idle: opened {Volatile.Read(ref opened)}/{count}");
            }
        }
    }

    /// <summary>
    /// How many are still open: the peer has not closed its side (POLLRDHUP) nor reset them. Data a server sent
    /// and then closed (Redis's protected mode answers -DENIED to any source but 127.0.0.1) is shown once.
    /// </summary>
    public int CountOpen()
    {
        if (_sockets.Length == 0)
        {
            return 0;
        }

        if (!OperatingSystem.IsLinux())
        {
            // Readable with nothing to read is the end of the stream; data pending counts as open.
            return _sockets.Count(s => !s.Poll(0, SelectMode.SelectRead) || s.Available > 0);
        }

        var descriptors = _sockets.Select(s => new Libc.PollFd((int)s.Handle, Libc.PollIn | Libc.PollRdHup, 0)).ToArray();
        if (Libc.Poll(descriptors, (nuint)descriptors.Length, 0) < 0)
        {
            Console.Error.WriteLine($"idle: poll failed, errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}; counting none as open");
            return 0;
        }

        var open = 0;
        var shown = false;
        for (var i = 0; i < descriptors.Length; i++)
        {
            if ((descriptors[i].ReturnedEvents & (Libc.PollRdHup | Libc.PollHup | Libc.PollErr)) == 0)
            {
                open++;
            }
            else if (!shown && (descriptors[i].ReturnedEvents & Libc.PollIn) != 0)
            {
                shown = ShowLastWords(_sockets[i]);
            }
        }

        return open;
    }

    private static bool ShowLastWords(Socket socket)
    {
        try
        {
            var said = new byte[200];
            var length = socket.Receive(said, SocketFlags.Peek);
            if (length > 0)
            {
                Console.Error.WriteLine($"idle: the server sent '{Wire.Describe(said.AsSpan(0, length))}' and closed");
            }

            return length > 0;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public void Dispose()
    {
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }
    }
}
