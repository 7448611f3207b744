using System.Collections.Concurrent;

namespace Gateway.Protocols.Tests;

/// <summary>The host's side of <see cref="IProtocolActivityFeature"/>, keeping what a protocol reports, for tests.</summary>
internal sealed class RecordingActivity : IProtocolActivityFeature
{
    public ConcurrentQueue<(string Operation, string Outcome)> Messages { get; } = new();

    public ConcurrentQueue<(string Operation, Exception Exception)> Faults { get; } = new();

    public ConcurrentQueue<string> Abandoned { get; } = new();

    public ConcurrentQueue<(string Outcome, string Check)> Logins { get; } = new();

    public Func<IReadOnlyDictionary<string, string?>>? Details { get; set; }

    public void MessageHandled(string operation, string outcome, double seconds) => Messages.Enqueue((operation, outcome));

    public void Faulted(string operation, Exception exception) => Faults.Enqueue((operation, exception));

    void IProtocolActivityFeature.Abandoned(string operation) => Abandoned.Enqueue(operation);

    public void TransferEnded(string direction, long bytes, string outcome)
    {
    }

    public void TlsHandshakeEnded(string channel, bool succeeded)
    {
    }

    public ConcurrentQueue<string> LimitsReached { get; } = new();

    public void LimitReached(string limit) => LimitsReached.Enqueue(limit);

    public void LoginEnded(string outcome, string check) => Logins.Enqueue((outcome, check));
}
