using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Telemetry;
using Gateway.Workers;
using Microsoft.AspNetCore.Http.HttpResults;

namespace Gateway.Admin;

/// <summary>
/// The REST admin API: list, inspect and close live connections; listeners and workers. Shaped after Redis
/// CLIENT LIST/KILL, RabbitMQ's /api/connections and HAProxy's show sess / shutdown session.
/// </summary>
public static partial class AdminEndpoints
{
    public static IEndpointRouteBuilder MapAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        var admin = endpoints.MapGroup("/admin")
            .AddEndpointFilter<ApiKeyFilter>()
            .WithTags("admin")
            .ProducesProblem(StatusCodes.Status401Unauthorized);

        admin.MapGet("/connections", ListConnections)
            .WithName("ListConnections")
            .WithSummary("List live connections")
            .WithDescription("Every live protocol connection, filtered, sorted and paged. `total` counts all matches; `items` is one page.")
            .ProducesValidationProblem();

        admin.MapGet("/connections/{id}", GetConnection)
            .WithName("GetConnection")
            .WithSummary("One live connection")
            .WithDescription("The connection with this id, or 404 when it is not (or no longer) open.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        admin.MapDelete("/connections/{id}", CloseConnection)
            .WithName("CloseConnection")
            .WithSummary("Close a connection")
            .WithDescription("Asks the connection to close gracefully (its request in progress finishes; FTP says 421), then aborts it after Gateway:Admin:CloseGraceSeconds. The reason is logged and counted.")
            .ProducesProblem(StatusCodes.Status404NotFound);

        admin.MapGet("/listeners", ListListeners)
            .WithName("ListListeners")
            .WithSummary("Protocol listeners")
            .WithDescription("Each protocol listener: address, port, model, and its counters since start.");

        admin.MapGet("/workers", ListWorkers)
            .WithName("ListWorkers")
            .WithSummary("Worker processes")
            .WithDescription("The prefork pool's worker processes; empty while no listener runs on the prefork model.");

        return endpoints;
    }

    private static Results<Ok<ConnectionPage>, ValidationProblem> ListConnections(
        [AsParameters] ConnectionQuery query, ConnectionRegistry registry)
    {
        if (query.Problem() is { } problem)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["query"] = [problem] });
        }

        return TypedResults.Ok(registry.List(query));
    }

    private static Results<Ok<ConnectionSnapshot>, ProblemHttpResult> GetConnection(string id, ConnectionRegistry registry) =>
        registry.Find(id) is { } record
            ? TypedResults.Ok(record.Snapshot(Environment.TickCount64))
            : NotFound(id);

    private static Results<Accepted<CloseAccepted>, ProblemHttpResult> CloseConnection(
        string id, string? reason, ConnectionRegistry registry, GatewayMetrics metrics, AdminOptions options, ILogger<ConnectionRegistry> logger)
    {
        if (registry.Find(id) is not { } record)
        {
            return NotFound(id);
        }

        reason = string.IsNullOrWhiteSpace(reason) ? "no reason given" : reason.Trim();
        var grace = TimeSpan.FromSeconds(options.CloseGraceSeconds);
        if (record.RequestClose(reason, grace))
        {
            metrics.ClosedByAdmin(record.Listener);
            LogClosing(logger, id, record.Listener.Protocol, record.Remote, reason);
        }

        return TypedResults.Accepted($"/admin/connections/{id}", new CloseAccepted(id, "closing", reason, grace.TotalSeconds));
    }

    private static Ok<ListenerInfo[]> ListListeners(GatewayListeners listeners, ConnectionRegistry registry) =>
        TypedResults.Ok(listeners.Stats.Select(l =>
        {
            var (liveIn, liveOut) = registry.LiveBytes(l);
            return new ListenerInfo(l.Protocol, (l.Endpoint with { Port = l.Port }).Display, l.Port, l.Model,
                l.Active, l.Accepted, l.Rejected, l.ClosedBytesIn + liveIn, l.ClosedBytesOut + liveOut);
        }).ToArray());

    private static Ok<WorkerInfo[]> ListWorkers(WorkerPool pool) => TypedResults.Ok(pool.Workers().ToArray());

    private static ProblemHttpResult NotFound(string id) => TypedResults.Problem(
        statusCode: StatusCodes.Status404NotFound,
        title: "No such connection",
        detail: $"No open connection has id '{id}'.");

    [LoggerMessage(EventId = 30, Level = LogLevel.Information, Message = "Closing {Protocol} connection {Id} from {Remote} by admin request: {Reason}")]
    private static partial void LogClosing(ILogger logger, string id, string protocol, string remote, string reason);
}
