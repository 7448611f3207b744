using System.Runtime.InteropServices;

namespace Gateway.Listeners;

/// <summary>
/// The gateway's answer to SIGTERM, SIGINT (Ctrl+C) and SIGQUIT, in place of the host's console lifetime
/// (which stops everything at once, the admin endpoint included, so /readyz could never say 503): the first
/// signal starts the <see cref="GatewayDrain"/>, which stops the host when it is done; a second one stops at once.
/// </summary>
public sealed class GatewayLifetime(GatewayDrain drain) : IHostLifetime, IDisposable
{
    private readonly List<PosixSignalRegistration> _signals = [];
    private int _received;

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
        if (Interlocked.Increment(ref _received) == 1)
        {
            _ = drain.BeginAsync();
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
}
