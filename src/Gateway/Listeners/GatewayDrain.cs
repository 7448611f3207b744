using Gateway.Connections;
using Gateway.Workers;

namespace Gateway.Listeners;

/// <summary>
/// The graceful stop on SIGTERM or Ctrl+C (see <see cref="GatewayLifetime"/>), in the order a load balancer
/// needs: /readyz answers 503 at once; the protocol listeners stop accepting (new clients are refused) while
/// the admin endpoint keeps serving; every connection is asked to close — RPC finishes the request in
/// flight, FTP lets a running transfer end and answers 421 to the next command, echo closes — and the prefork
/// workers drain the same way; when none is left, or after <c>Gateway:Limits:ShutdownTimeoutSeconds</c>
/// (then what remains is aborted), the host stops and the process exits 0. A second signal stops at once (one
/// within <see cref="GatewayLifetime.RepeatWindow"/> of the first is the same signal twice, see there).
/// </summary>
public sealed partial class GatewayDrain(AcceptStopper stopper, GatewayListeners listeners, ConnectionRegistry registry, LimitsOptions limits,
    IHostApplicationLifetime lifetime, ILogger<GatewayDrain> logger, WorkerPool? pool = null)
{
    private const string Reason = "the server is shutting down";
    private readonly Lock _gate = new();
    private Task? _draining;

    /// <summary>From the first moment of a drain; /readyz answers 503.</summary>
    public bool IsDraining
    {
        get
        {
            lock (_gate)
            {
                return _draining is not null;
            }
        }
    }

    /// <summary>Starts the drain (once; later calls return the same task).</summary>
    public Task BeginAsync()
    {
        lock (_gate)
        {
            return _draining ??= Task.Run(DrainAsync);
        }
    }

    /// <summary>A second signal (later than a repeat of the first): every connection closed now, the host stopped.</summary>
    public void StopNow()
    {
        LogStoppingNow(logger, registry.Count);
        registry.AbortAll($"{Reason} (stopped at once)");
        lifetime.StopApplication();
    }

    private async Task DrainAsync()
    {
        var timeout = TimeSpan.FromSeconds(limits.ShutdownTimeoutSeconds);
        LogDraining(logger, limits.ShutdownTimeoutSeconds);
        try
        {
            var admin = listeners.Bound().Where(e => e.Protocol is null).Select(e => e.Port).ToHashSet();
            await stopper.StopAsync(admin);
            // The pool tells its workers to drain and lets go of its sockets; it finishes within the timeout too.
            var workers = pool?.StopAsync(CancellationToken.None) ?? Task.CompletedTask;
            var asked = registry.RequestCloseAll(Reason, timeout);
            LogClosing(logger, asked);
            using var deadline = new CancellationTokenSource(timeout + TimeSpan.FromSeconds(1));
            while ((registry.Count > 0 || !workers.IsCompleted) && !deadline.IsCancellationRequested)
            {
                await Task.WhenAny(workers, Task.Delay(100, CancellationToken.None));
            }

            if (registry.Count > 0)
            {
                registry.AbortAll($"{Reason} (still open after {limits.ShutdownTimeoutSeconds} s)");
            }
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or ObjectDisposedException)
        {
            LogDrainFailed(logger, e);
        }
        finally
        {
            lifetime.StopApplication();
        }
    }

    [LoggerMessage(EventId = 3, Level = LogLevel.Information, Message = "Draining: /readyz answers 503, no new connections; open ones finish their request in progress (up to {Seconds} s, then they are aborted)")]
    private static partial void LogDraining(ILogger logger, int seconds);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "Asked {Count} connection(s) to close")]
    private static partial void LogClosing(ILogger logger, int count);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Second stop signal: closing {Count} connection(s) now")]
    private static partial void LogStoppingNow(ILogger logger, int count);

    [LoggerMessage(EventId = 7, Level = LogLevel.Error, Message = "The drain failed; stopping")]
    private static partial void LogDrainFailed(ILogger logger, Exception exception);
}
