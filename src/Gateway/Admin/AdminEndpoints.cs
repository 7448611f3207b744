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
            .WithDescription("Every live protocol connection, the prefork workers' included (ids `w<worker>-...`), filtered, sorted and paged. `total` counts all matches; `items` is one page; `unansweredWorkers` names workers that did not answer in time.")
            .ProducesValidationProblem();

        admin.MapGet("/connections/{id}", GetConnection)
            .WithName("GetConnection")
            .WithSummary("One live connection")
            .WithDescription("The connection with this id, or 404 when it is not (or no longer) open.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status504GatewayTimeout);

        admin.MapDelete("/connections/{id}", CloseConnection)
            .WithName("CloseConnection")
            .WithSummary("Close a connection")
            .WithDescription("Asks the connection to close gracefully (its request in progress finishes; FTP says 421), then aborts it after Gateway:Admin:CloseGraceSeconds. The reason is logged and counted.")
            .ProducesProblem(StatusCodes.Status404NotFound)
            .ProducesProblem(StatusCodes.Status504GatewayTimeout);

        admin.MapGet("/listeners", ListListeners)
            .WithName("ListListeners")
            .WithSummary("Protocol listeners")
            .WithDescription("Each protocol listener: address, port, model, and its counters since start (a prefork listener's from its workers' last heartbeats).");

        admin.MapGet("/workers", ListWorkers)
            .WithName("ListWorkers")
            .WithSummary("Worker processes")
            .WithDescription("The prefork pool's worker processes; empty while no listener runs on the prefork model.");

        admin.MapGet("/stats", ReadStats)
            .WithName("ReadStats")
            .WithSummary("The last minutes, second by second")
            .WithDescription("One sample a second, oldest first (the last 300 are kept): open connections per protocol, bytes per second in and out, RPC requests per second and their p50/p99/max latency. What the dashboard at /admin/ui/ charts.")
            .ProducesValidationProblem();

        return endpoints;
    }

    private static Results<Ok<StatsSeries>, ValidationProblem> ReadStats(AdminStats stats, int? seconds)
    {
        if (seconds is < 1 or > AdminStats.Capacity)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["seconds"] = [$"seconds must be between 1 and {AdminStats.Capacity}"] });
        }

        return TypedResults.Ok(stats.Read(seconds ?? AdminStats.Capacity));
    }

    private static async Task<Results<Ok<ConnectionPage>, ValidationProblem>> ListConnections(
        [AsParameters] ConnectionQuery query, ConnectionRegistry registry, WorkerPool pool)
    {
        if (query.Problem() is { } problem)
        {
            return TypedResults.ValidationProblem(new Dictionary<string, string[]> { ["query"] = [problem] });
        }

        return TypedResults.Ok(pool.IsActive ? await pool.ListAsync(query, registry.List) : registry.List(query));
    }

    private static async Task<Results<Ok<ConnectionSnapshot>, ProblemHttpResult>> GetConnection(string id, ConnectionRegistry registry, WorkerPool pool)
    {
        if (WorkerPool.TryParseConnectionId(id, out var worker, out var inner))
        {
            var (answered, connection) = await pool.GetAsync(worker, inner);
            return !answered ? Unanswered(worker) : connection is null ? NotFound(id) : TypedResults.Ok(connection);
        }

        return registry.Find(id) is { } record ? TypedResults.Ok(record.Snapshot(Environment.TickCount64)) : NotFound(id);
    }

    private static async Task<Results<Accepted<CloseAccepted>, ProblemHttpResult>> CloseConnection(
        string id, string? reason, ConnectionCloser closer, WorkerPool pool)
    {
        reason = ConnectionCloser.ReasonOrDefault(reason);
        if (WorkerPool.TryParseConnectionId(id, out var worker, out var inner))
        {
            // The worker that owns it closes it, with the same grace, count and log line.
            var (answered, found) = await pool.CloseAsync(worker, inner, reason);
            if (!answered || !found)
            {
                return !answered ? Unanswered(worker) : NotFound(id);
            }
        }
        else if (!closer.Close(id, reason))
        {
            return NotFound(id);
        }

        return TypedResults.Accepted($"/admin/connections/{id}", new CloseAccepted(id, "closing", reason, closer.Grace.TotalSeconds));
    }

    private static Ok<ListenerInfo[]> ListListeners(GatewayListeners listeners, ConnectionRegistry registry, WorkerPool pool) =>
        TypedResults.Ok(ListenerTotals.Read(listeners, registry, pool));

    private static Ok<WorkerInfo[]> ListWorkers(WorkerPool pool) => TypedResults.Ok(pool.Workers().ToArray());

    private static ProblemHttpResult NotFound(string id) => TypedResults.Problem(
        statusCode: StatusCodes.Status404NotFound,
        title: "No such connection",
        detail: $"No open connection has id '{id}'.");

    private static ProblemHttpResult Unanswered(int worker) => TypedResults.Problem(
        statusCode: StatusCodes.Status504GatewayTimeout,
        title: "Worker did not answer",
        detail: $"Worker {worker} of the prefork pool did not answer in time; try again, or see GET /admin/workers.");
}
