using System.Runtime.InteropServices;

namespace Gateway.Listeners;

/// <summary>
/// The gateway's answer to SIGTERM, SIGINT (Ctrl+C) and SIGQUIT, in place of the host's console lifetime
/// (which stops everything at once, the admin endpoint included, so /readyz could never say 503): the first
/// signal starts the <see cref="GatewayDrain"/>, which stops the host when it is done; a second one stops at once.
/// </summary>
/// <remarks>
/// One signal often arrives twice: sent to the process group and forwarded by a parent (<c>timeout … dotnet
/// run</c>, a shell, a supervisor that relays what it gets). So a signal within <see cref="RepeatWindow"/> of the
/// first is the same one; only a later one is the operator asking again.
/// </remarks>
public sealed partial class GatewayLifetime(GatewayDrain drain, ILogger<GatewayLifetime> logger) : IHostLifetime, IDisposable
{
    public static readonly TimeSpan RepeatWindow = TimeSpan.FromSeconds(1);

    private readonly List<PosixSignalRegistration> _signals = [];
    private readonly Lock _gate = new();
    private long? _firstTick;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        foreach (var signal in (PosixSignal[])[PosixSignal.SIGTERM, PosixSignal.SIGINT, PosixSignal.SIGQUIT])
        {
            _signals.Add(PosixSignalRegistration.Create(signal, OnSignal));
        }

        return Task.CompletedTask;
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // the process exits when the host has stopped, not now
        var now = Environment.TickCount64;
        long? first;
        lock (_gate)
        {
            first = _firstTick;
            _firstTick ??= now;
        }

        if (first is null)
        {
            _ = drain.BeginAsync();
        }
        else if (now - first < (long)RepeatWindow.TotalMilliseconds)
        {
            LogRepeated(logger, context.Signal, now - first.Value);
        }
        else
        {
            drain.StopNow();
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        foreach (var signal in _signals)
        {
            signal.Dispose();
        }
    }

    [LoggerMessage(EventId = 8, Level = LogLevel.Information, Message = "{Signal} {Milliseconds} ms after the first stop signal: taken as the same one (delivered twice); the drain goes on, a signal after a second stops at once")]
    private static partial void LogRepeated(ILogger logger, PosixSignal signal, long milliseconds);
}
