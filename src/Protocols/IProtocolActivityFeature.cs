namespace Gateway.Protocols;

/// <summary>
/// Where a protocol reports each message it handled, for the host's connection registry and metrics. The host
/// sets it on every connection; without it nothing is reported. Names come from fixed sets (method names,
/// verbs, error codes), never from client input, because they become metric tags.
/// </summary>
public interface IProtocolActivityFeature
{
    /// <param name="operation">What was asked: an RPC method name (<c>unknown</c> for anything else), an FTP verb.</param>
    /// <param name="outcome"><see cref="ProtocolOutcomes.Ok"/> or an error code such as <c>bad_json</c>.</param>
    /// <param name="seconds">How long handling took, reply written.</param>
    void MessageHandled(string operation, string outcome, double seconds);
}

public static class ProtocolOutcomes
{
    public const string Ok = "ok";
}
