using Gateway.Listeners;
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

    public static string ReasonOrDefault(string? reason) => string.IsNullOrWhiteSpace(reason) ? "no reason given" : reason.Trim();

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
