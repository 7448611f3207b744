using Microsoft.OpenApi;
using Swashbuckle.AspNetCore.SwaggerGen;

namespace Gateway.Admin;

/// <summary>The OpenAPI document (Swashbuckle) at /swagger/v1/swagger.json and Swagger UI at /swagger.</summary>
public static class AdminOpenApi
{
    private const string SchemeName = "ApiKey";

    public static IServiceCollection AddAdminOpenApi(this IServiceCollection services)
    {
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(swagger =>
        {
            swagger.SwaggerDoc("v1", new OpenApiInfo
            {
                Title = "Gateway admin API",
                Version = "v1",
                Description = "Live connections, listeners and workers of a Gateway process. When Gateway:Admin:ApiKey is set, /admin requests need it in the X-Api-Key header (or Authorization: Bearer).",
            });
            swagger.AddSecurityDefinition(SchemeName, new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.ApiKey,
                In = ParameterLocation.Header,
                Name = ApiKeyFilter.HeaderName,
                Description = "The value of Gateway:Admin:ApiKey.",
            });
            swagger.OperationFilter<AdminKeyRequirement>();
        });
        return services;
    }

    public static WebApplication UseAdminOpenApi(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseSwagger();
        app.UseSwaggerUI(ui => ui.DocumentTitle = "Gateway admin API");
        return app;
    }

    /// <summary>Only /admin needs the key; /healthz, /readyz, /metrics and /swagger stay open.</summary>
    private sealed class AdminKeyRequirement : IOperationFilter
    {
        public void Apply(OpenApiOperation operation, OperationFilterContext context)
        {
            if (context.ApiDescription.RelativePath?.StartsWith("admin/", StringComparison.Ordinal) == true)
            {
                operation.Security ??= [];
                operation.Security.Add(new OpenApiSecurityRequirement
                {
                    [new OpenApiSecuritySchemeReference(SchemeName, context.Document)] = [],
                });
            }
        }
    }
}
