namespace Gateway.Admin;

public static class HealthEndpoints
{
    /// <summary><c>/healthz</c>: the process is alive and serving HTTP (Kubernetes liveness).</summary>
    public static IEndpointRouteBuilder MapHealthEndpoints(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGet("/healthz", () => Results.Text("ok\n"));
        return endpoints;
    }
}
