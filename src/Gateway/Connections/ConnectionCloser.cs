using Gateway.Listeners;
using Gateway.Protocols;
using Gateway.Telemetry;

namespace Gateway.Connections;

/// <summary>
/// A close asked for by an operator (DELETE /admin/connections/{id}): the graceful request, then an abort
/// after the grace period, counted and logged once. The admin API uses it for the gateway's own connections
/// and a prefork worker for its own, when the supervisor passes the request on.
/// </summary>
public sealed partial class ConnectionCloser(ConnectionRegistry registry, GatewayMetrics metrics, AdminOptions options, ILogger<ConnectionCloser> logger)
{
    public TimeSpan Grace => TimeSpan.FromSeconds(options.CloseGraceSeconds);

    /// <summary>A reason is logged and answered, and passed on to a worker: at most this many characters.</summary>
    public const int MaxReasonLength = 200;

    /// <summary>
    /// The operator's reason as one printable line of at most <see cref="MaxReasonLength"/> characters: it comes
    /// from the query string, and raw CR, LF or escape sequences in it would forge log lines or drive the
    /// terminal of whoever reads the log. The same text again gives itself back (a worker applies it too).
    /// </summary>
    public static string ReasonOrDefault(string? reason)
    {
        var line = PrintableText.OneLine(reason?.Trim() ?? "", MaxReasonLength);
        return line.Length == 0 ? "no reason given" : line;
    }

    /// <summary>False when there is no open connection by that id.</summary>
    public bool Close(string id, string reason)
    {
        if (registry.Find(id) is not { } record)
        {
            return false;
        }

        if (record.RequestClose($"closed by the admin API: {reason}", Grace))
        {
            metrics.ClosedByAdmin(record.Listener);
            LogClosing(logger, id, record.Listener.Protocol, record.Remote, reason);
        }

        return true;
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "Closing {Protocol} connection {Id} from {Remote} by admin request: {Reason}")]
    private static partial void LogClosing(ILogger logger, string id, string protocol, string remote, string reason);
}
