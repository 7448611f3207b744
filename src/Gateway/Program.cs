using Gateway.Admin;
using Gateway.Listeners;
using Gateway.Telemetry;

// Composition only: configuration → listeners → admin endpoints and telemetry → run.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions
{
    Args = args,
    ContentRootPath = GatewayHost.LocateContentRoot(),
});

if (!GatewayConfiguration.TryLoad(builder.Configuration, out var options, out var endpoints, out var errors))
{
    foreach (var error in errors)
    {
        await Console.Error.WriteLineAsync($"Gateway: configuration error: {error}");
    }

    return 2;
}

builder.AddGateway(options, endpoints);

var app = builder.Build();
app.UseAdminOpenApi();
app.MapHealthEndpoints();
app.MapAdminEndpoints();
app.MapGatewayMetrics();
return await app.RunGatewayAsync();
