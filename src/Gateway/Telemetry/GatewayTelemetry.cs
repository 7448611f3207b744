using Gateway.Protocols;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gateway.Telemetry;

/// <summary>
/// OpenTelemetry: the Gateway meter plus Kestrel's, ASP.NET Core's and the runtime's built-in meters, scraped
/// by Prometheus at /metrics on the admin port; OTLP export of metrics and traces when the standard
/// OTEL_EXPORTER_OTLP_ENDPOINT is set.
/// </summary>
public static class GatewayTelemetry
{
    private static readonly string[] Meters =
    [
        GatewayMetrics.MeterName,
        "Microsoft.AspNetCore.Server.Kestrel",
        "Microsoft.AspNetCore.Hosting",
        "System.Runtime",
    ];

    // The runtime names three gauges "*.count", which Prometheus reserves for histogram and summary parts
    // (promtool rejects them); they are exported under names that say the same thing.
    private static readonly (string Instrument, string ExportedAs)[] Renames =
    [
        ("dotnet.assembly.count", "dotnet.assemblies.loaded"),
        ("dotnet.process.cpu.count", "dotnet.process.cpus"),
        ("dotnet.timer.count", "dotnet.timers.active"),
    ];

    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        var otlp = !string.IsNullOrWhiteSpace(configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);
        services.AddSingleton<GatewayMetrics>();
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("gateway"))
            .WithMetrics(metrics =>
            {
                metrics.AddMeter(Meters).AddPrometheusExporter();
                foreach (var (instrument, exportedAs) in Renames)
                {
                    metrics.AddView(instrument, new MetricStreamConfiguration { Name = exportedAs });
                }

                if (otlp)
                {
                    metrics.AddOtlpExporter();
                }
            });

        // Traces only when they go somewhere: a listening tracer makes every request build an Activity.
        if (otlp)
        {
            telemetry.WithTracing(tracing => tracing
                .AddSource(ProtocolTelemetry.ActivitySourceName, "Microsoft.AspNetCore")
                .AddOtlpExporter());
        }

        return services;
    }

    public static IEndpointRouteBuilder MapGatewayMetrics(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapPrometheusScrapingEndpoint("/metrics");
        return endpoints;
    }
}
