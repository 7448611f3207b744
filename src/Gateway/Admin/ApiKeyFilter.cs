using System.Security.Cryptography;
using System.Text;
using Gateway.Listeners;

namespace Gateway.Admin;

/// <summary>
/// When <c>Gateway:Admin:ApiKey</c> is set, an /admin request must present it as <c>X-Api-Key</c> or
/// <c>Authorization: Bearer</c>. Compared in constant time (hashes of equal length, so not even the key's
/// length leaks); the key is never logged.
/// </summary>
public sealed class ApiKeyFilter(AdminOptions options) : IEndpointFilter
{
    public const string HeaderName = "X-Api-Key";

    private readonly byte[]? _keyHash = string.IsNullOrEmpty(options.ApiKey) ? null : SHA256.HashData(Encoding.UTF8.GetBytes(options.ApiKey));

    public ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (_keyHash is null || Presents(context.HttpContext.Request, _keyHash))
        {
            return next(context);
        }

        context.HttpContext.Response.Headers.WWWAuthenticate = "Bearer";
        return ValueTask.FromResult<object?>(Results.Problem(
            statusCode: StatusCodes.Status401Unauthorized,
            title: "API key required",
            detail: $"Send the admin API key in the {HeaderName} header or as 'Authorization: Bearer <key>'."));
    }

    private static bool Presents(HttpRequest request, byte[] keyHash)
    {
        string? presented = request.Headers[HeaderName];
        if (string.IsNullOrEmpty(presented))
        {
            string? authorization = request.Headers.Authorization;
            if (authorization?.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) == true)
            {
                presented = authorization["Bearer ".Length..].Trim();
            }
        }

        return !string.IsNullOrEmpty(presented)
            && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(presented)), keyHash);
    }
}
