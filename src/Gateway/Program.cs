using Gateway.Admin;
using Gateway.Listeners;

// Composition only: configuration → listeners → admin endpoints → run.
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
app.MapHealthEndpoints();
return await app.RunGatewayAsync();
