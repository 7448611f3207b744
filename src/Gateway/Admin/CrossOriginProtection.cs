using System.Net;
using System.Net.Sockets;
using Gateway.Listeners;
using Gateway.Protocols;

namespace Gateway.Admin;

/// <summary>
/// Keeps web pages in the operator's browser from using the admin endpoint. Any page may send requests to
/// 127.0.0.1 (a form, a fetch whose answer it cannot read), and through DNS rebinding, its own host name pointed
/// at 127.0.0.1, it can read the answers too: to the browser they come from the page's own origin. So while the
/// endpoint is open (no API key) on loopback, a request must name a loopback host in <c>Host</c> (localhost,
/// 127.x.x.x or [::1], with or without a port) or it gets 421. And a request that may change something (any
/// method but GET, HEAD, OPTIONS, TRACE) carrying an <c>Origin</c> must come from the origin it is sent to, or it
/// gets 403, key or no key. Browsers send Origin with every such request, the dashboard's own included; curl and
/// scripts send none. With an API key any Host is served: the key is the protection, and a proxy or a
/// port-forward may call the endpoint anything.
/// </summary>
public sealed partial class CrossOriginProtection(RequestDelegate next, AdminOptions options, GatewayListeners listeners, ILogger<CrossOriginProtection> logger)
{
    /// <summary>Host and Origin values are chosen by the client: logged as one printable line, this long at most.</summary>
    private const int MaxShownLength = 100;

    private readonly bool _loopbackHostsOnly = string.IsNullOrEmpty(options.ApiKey) && listeners.Admin.Address is { } address && IPAddress.IsLoopback(address);

    public Task InvokeAsync(HttpContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var request = context.Request;
        if (_loopbackHostsOnly && !IsLoopbackName(request.Host))
        {
            LogForeignHost(logger, Shown(request.Host.Value), request.Method);
            return Refuse(context, StatusCodes.Status421MisdirectedRequest, "Not a loopback host name",
                "Without an API key the admin endpoint answers only to localhost, 127.0.0.1 or [::1]: another name may be a web page's, pointed at this machine (DNS rebinding).");
        }

        if (!IsSafe(request.Method) && request.Headers.Origin is { Count: > 0 } origin && !IsSameOrigin(origin.ToString(), request.Host))
        {
            LogForeignOrigin(logger, request.Method, Shown(origin.ToString()));
            return Refuse(context, StatusCodes.Status403Forbidden, "Cross-origin request refused",
                "A request that changes something is taken from this endpoint's own pages, or from a client that is not a browser (no Origin header).");
        }

        return next(context);
    }

    private static bool IsSafe(string method) =>
        HttpMethods.IsGet(method) || HttpMethods.IsHead(method) || HttpMethods.IsOptions(method) || HttpMethods.IsTrace(method);

    /// <summary><c>localhost</c>, or an IP literal of a loopback address: an IPv6 one in brackets, an IPv4 one without.</summary>
    private static bool IsLoopbackName(HostString host)
    {
        if (!host.HasValue)
        {
            return false;
        }

        var name = host.Host;
        if (name.Equals("localhost", StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        return name.StartsWith('[') && name.EndsWith(']')
            ? IPAddress.TryParse(name.AsSpan(1, name.Length - 2), out var v6) && v6.AddressFamily == AddressFamily.InterNetworkV6 && IPAddress.IsLoopback(v6)
            : IPAddress.TryParse(name, out var v4) && v4.AddressFamily == AddressFamily.InterNetwork && IPAddress.IsLoopback(v4);
    }

    /// <summary>
    /// The Origin names the host and port the request was sent to (its Host), whatever the scheme: a proxy in front
    /// may speak https. "null", a list, or anything that is not an http(s) origin is another origin.
    /// </summary>
    private static bool IsSameOrigin(string origin, HostString host) =>
        host.HasValue && Uri.TryCreate(origin, UriKind.Absolute, out var uri)
        && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
        && uri.Authority.Equals(host.Value, StringComparison.OrdinalIgnoreCase);

    private static Task Refuse(HttpContext context, int status, string title, string detail) =>
        Results.Problem(statusCode: status, title: title, detail: detail).ExecuteAsync(context);

    private static string Shown(string? value) => PrintableText.OneLine(value ?? "", MaxShownLength);

    [LoggerMessage(EventId = 90, Level = LogLevel.Warning, Message = "Admin endpoint: refused a {Method} request for host '{Host}': not a loopback name, and no API key is set (a DNS-rebinding web page would look like this)")]
    private static partial void LogForeignHost(ILogger logger, string host, string method);

    [LoggerMessage(EventId = 91, Level = LogLevel.Warning, Message = "Admin endpoint: refused a {Method} request from origin '{Origin}': a web page of another site")]
    private static partial void LogForeignOrigin(ILogger logger, string method, string origin);
}

public static class CrossOriginProtectionExtensions
{
    public static WebApplication UseCrossOriginProtection(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.UseMiddleware<CrossOriginProtection>();
        return app;
    }
}
