using System.IO.Compression;
using System.Text;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
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
        services.AddSingleton(new RequestDurations(servedAtMetrics: !otlp));
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
        endpoints.MapPrometheusScrapingEndpoint("/metrics", meterProvider: null, configureBranchedPipeline: pipeline =>
        {
            var durations = pipeline.ApplicationServices.GetRequiredService<RequestDurations>();
            if (durations.ServedAtMetrics)
            {
                pipeline.Use((context, next) => AddRequestDurationsAsync(context, next, durations));
            }
        }, optionsName: null);
        return endpoints;
    }

    /// <summary>
    /// The SDK exporter's scrape with <see cref="RequestDurations"/>' histogram added: at the end of the text
    /// format, before OpenMetrics' closing <c># EOF</c>. The exporter is asked for plain text and the whole is
    /// compressed here when the scraper accepts gzip (Prometheus does), as the exporter would have.
    /// </summary>
    private static async Task AddRequestDurationsAsync(HttpContext context, RequestDelegate next, RequestDurations durations)
    {
        var gzip = AcceptsGzip(context.Request.Headers.AcceptEncoding);
        context.Request.Headers.AcceptEncoding = default;
        var response = context.Response;
        var body = response.Body;
        using var scrape = new MemoryStream();
        response.Body = scrape;
        try
        {
            await next(context);
        }
        finally
        {
            response.Body = body;
        }

        var written = scrape.GetBuffer().AsMemory(0, (int)scrape.Length);
        if (response.StatusCode != StatusCodes.Status200OK)
        {
            await body.WriteAsync(written, context.RequestAborted);
            return;
        }

        var openMetrics = response.ContentType?.StartsWith("application/openmetrics-text", StringComparison.OrdinalIgnoreCase) == true;
        var text = new StringBuilder();
        durations.WritePrometheus(text, openMetrics);
        var added = Encoding.UTF8.GetBytes(text.ToString());
        var end = openMetrics ? written.Span.LastIndexOf("# EOF\n"u8) : -1;
        if (end < 0)
        {
            end = written.Length;
        }

        using var whole = new MemoryStream(written.Length + added.Length);
        if (gzip)
        {
            using var compressed = new GZipStream(whole, CompressionLevel.Fastest, leaveOpen: true);
            Write(compressed, written.Span, end, added);
            response.Headers.ContentEncoding = "gzip";
            response.Headers.Vary = "Accept-Encoding";
        }
        else
        {
            Write(whole, written.Span, end, added);
        }

        response.ContentLength = whole.Length;
        await body.WriteAsync(whole.GetBuffer().AsMemory(0, (int)whole.Length), context.RequestAborted);
    }

    private static void Write(Stream output, ReadOnlySpan<byte> scrape, int end, byte[] added)
    {
        output.Write(scrape[..end]);
        output.Write(added);
        output.Write(scrape[end..]);
    }

    private static bool AcceptsGzip(StringValues acceptEncoding) =>
        StringWithQualityHeaderValue.TryParseList(acceptEncoding, out var codings)
        && codings.Any(c => c.Value.Equals("gzip", StringComparison.OrdinalIgnoreCase) && c.Quality is not 0);
}
