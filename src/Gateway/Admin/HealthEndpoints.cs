using Gateway.Listeners;

namespace Gateway.Admin;

public static class HealthEndpoints
{
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/healthz", () => Results.Text("ok\n"))
            .WithTags("health")
            .WithSummary("Liveness: the process is alive and serving HTTP");

        endpoints.MapGet("/readyz", (IHostApplicationLifetime lifetime, GatewayDrain drain) =>
            lifetime.ApplicationStarted.IsCancellationRequested && !lifetime.ApplicationStopping.IsCancellationRequested && !drain.IsDraining
                ? Results.Text("ready\n")
                : Results.Text("not ready\n", statusCode: StatusCodes.Status503ServiceUnavailable))
            .WithTags("health")
            .WithSummary("Readiness: every listener is bound and the gateway is not draining (503 otherwise)")
            .Produces<string>(StatusCodes.Status200OK, "text/plain")
            .Produces<string>(StatusCodes.Status503ServiceUnavailable, "text/plain");
        return endpoints;
    }
}
