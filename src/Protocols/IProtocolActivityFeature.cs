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

    /// <summary>
    /// Handling a message failed in the protocol's own code (a bug, not bad input); the protocol has answered it
    /// with an error and goes on. The host logs the exception with the connection's facts.
    /// </summary>
    void Faulted(string operation, Exception exception);

    /// <summary>
    /// A request stopped unanswered because its connection ended while it ran or waited for the CPU (an RPC
    /// <c>work</c> or <c>sleep</c> whose client left): the work it would still have cost was not spent.
    /// </summary>
    /// <param name="operation">The method, as in <see cref="MessageHandled"/>.</param>
    void Abandoned(string operation);

    /// <summary>A data transfer outside the connection's own stream ended (FTP data connections).</summary>
    /// <param name="direction"><c>receive</c> (upload) or <c>transmit</c> (download, listing).</param>
    void TransferEnded(string direction, long bytes, string outcome);

    /// <summary>A TLS handshake the protocol ran itself ended (FTPS: AUTH TLS or an implicit-TLS port, a PROT P data connection).</summary>
    /// <param name="channel"><c>control</c> or <c>data</c>.</param>
    /// <param name="succeeded">Whether the session was established; false for a failure, a timeout or a client gone mid-handshake.</param>
    void TlsHandshakeEnded(string channel, bool succeeded);

    /// <summary>A login ended (FTP: a PASS).</summary>
    /// <param name="outcome"><see cref="ProtocolOutcomes.Ok"/>, <c>failed</c>, <c>locked_out</c>, <c>queue_full</c> or <c>queue_timeout</c>.</param>
    /// <param name="check">What checked the password: <c>hash</c> (PBKDF2), <c>cache</c> (a login remembered) or <c>none</c>.</param>
    void LoginEnded(string outcome, string check);

    /// <summary>
    /// A cap on what one client (or all of them) may hold refused this connection something, such as a passive
    /// data port. The host counts it by <paramref name="limit"/> and logs it at most once per interval, so a
    /// flood of refusals cannot flood the log.
    /// </summary>
    /// <param name="limit">One of <see cref="ProtocolLimitNames"/>.</param>
    void LimitReached(string limit);

    /// <summary>
    /// Protocol facts for the admin API (FTP: user, directory, transfer in progress), read only when someone
    /// looks, so keeping them current costs nothing.
    /// </summary>
    Func<IReadOnlyDictionary<string, string?>>? Details { get; set; }
}

public static class ProtocolOutcomes
{
    public const string Ok = "ok";
}

/// <summary>The caps a protocol reports through <see cref="IProtocolActivityFeature.LimitReached"/> (metric tag values).</summary>
public static class ProtocolLimitNames
{
    /// <summary>FTP: every port of the passive range is taken.</summary>
    public const string PassivePorts = "ftp_passive_ports";

    /// <summary>FTP: one client address holds as many pending passive listeners as it may.</summary>
    public const string PassivePortsPerAddress = "ftp_passive_ports_per_address";
}
