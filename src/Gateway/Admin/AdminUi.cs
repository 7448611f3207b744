using System.Collections.Frozen;
using System.Security.Cryptography;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Net.Http.Headers;

namespace Gateway.Admin;

/// <summary>
/// The dashboard at /admin/ui/: a page, its script and style, and the vendored chart library (uPlot), embedded
/// in the assembly (see Gateway.csproj) so they are served whatever the working folder, offline, from the
/// admin port. The files hold nothing secret and are served without the API key; the data they fetch from
/// /admin needs it, and the page asks for it. A strict Content-Security-Policy: the page runs only its own
/// files and talks only to this origin.
/// </summary>
public static class AdminUi
{
    public const string Path = "/admin/ui";
    private const string ResourcePrefix = "AdminUi/";

    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    public static IEndpointRouteBuilder MapAdminUi(this IEndpointRouteBuilder endpoints)
    {
        var files = Load();
        endpoints.MapGet(Path + "/{**file}", (string? file, HttpContext context) =>
        {
            if (string.IsNullOrEmpty(file) && !context.Request.Path.Value!.EndsWith('/'))
            {
                return Results.Redirect(Path + "/"); // the page's relative links need the slash
            }

            if (!files.TryGetValue(string.IsNullOrEmpty(file) ? "index.html" : file, out var asset))
            {
                return Results.NotFound();
            }

            var headers = context.Response.Headers;
            headers.ContentSecurityPolicy = ContentSecurityPolicy;
            headers.XContentTypeOptions = "nosniff";
            headers.XFrameOptions = "DENY";
            headers["Referrer-Policy"] = "no-referrer";
            headers.CacheControl = "no-cache"; // revalidate: a new build's files are seen at once, 304 otherwise
            return Results.Bytes(asset.Content, asset.ContentType, entityTag: asset.ETag);
        }).ExcludeFromDescription();
        return endpoints;
    }

    private sealed record Asset(byte[] Content, string ContentType, EntityTagHeaderValue ETag);

    private static FrozenDictionary<string, Asset> Load()
    {
        var assembly = typeof(AdminUi).Assembly;
        var types = new FileExtensionContentTypeProvider();
        var files = new Dictionary<string, Asset>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var buffer = new MemoryStream();
            stream.CopyTo(buffer);
            var content = buffer.ToArray();
            var file = name[ResourcePrefix.Length..];
            var type = types.TryGetContentType(file, out var known) ? known : "application/octet-stream";
            if (type.StartsWith("text/", StringComparison.Ordinal) || type.EndsWith("javascript", StringComparison.Ordinal))
            {
                type += "; charset=utf-8";
            }

            var tag = new EntityTagHeaderValue('"' + Convert.ToHexStringLower(SHA256.HashData(content).AsSpan(0, 8)) + '"');
            files[file] = new Asset(content, type, tag);
        }

        return files.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
