using System.Net;
using Gateway.Connections;
using Gateway.Models;
using Gateway.Protocols;
using Gateway.Protocols.Echo;
using Gateway.Protocols.Ftp;
using Gateway.Protocols.Rpc;
using Gateway.Workers;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Gateway.Listeners;

/// <summary>
/// Turns the checked configuration into Kestrel endpoints: one per protocol listener, each running the
/// admission middleware and then its protocol's <c>ConnectionHandler</c>, plus the admin HTTP endpoint.
/// Keeps each endpoint's <see cref="ListenOptions"/> so the bound address (port 0 included) can be reported.
/// </summary>
/// <remarks>
/// Listeners on the <c>prefork</c> model are bound by the <see cref="WorkerPool"/> in the supervisor and served
/// in the workers; a worker (<paramref name="worker"/> set) serves only those, on the sockets it was passed.
/// </remarks>
public sealed partial class GatewayListeners(IReadOnlyList<ListenerEndpoint> endpoints, ILogger<GatewayListeners> logger, WorkerRole? worker = null)
{
    private readonly List<(ListenerEndpoint Endpoint, ListenOptions Options)> _bound = [];
    private readonly Dictionary<string, int> _preforkPorts = [];

    /// <summary>One entry per protocol listener, in configuration order (in a worker: the ones it serves).</summary>
    public IReadOnlyList<ListenerStats> Stats { get; } =
        endpoints.Where(e => e.Protocol is not null && (worker is null || worker.Sockets.ContainsKey(e.Key)))
            .Select(e => new ListenerStats(e, worker?.Index)).ToArray();

    /// <summary>The listeners the worker pool serves.</summary>
    public IReadOnlyList<ListenerEndpoint> PreforkEndpoints { get; } =
        [.. endpoints.Where(e => e.Protocol is not null && e.Model == ServerModels.Prefork)];

    /// <summary>The worker pool has bound a prefork listener (port 0 resolved).</summary>
    public void SetPreforkPort(string key, int port)
    {
        lock (_preforkPorts)
        {
            _preforkPorts[key] = port;
        }
    }

    /// <summary>The admin HTTP endpoint as configured.</summary>
    public ListenerEndpoint Admin { get; } = endpoints.Single(e => e.Protocol is null);

    public void Configure(KestrelServerOptions kestrel, ConnectionMiddleware middleware, ServerCertificate certificate)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(middleware);
        ArgumentNullException.ThrowIfNull(certificate);
        // Kestrel's TLS middleware, after admission (a refused client costs no handshake) and before the handler,
        // which reads and writes plaintext as on any other connection. The certificate is looked up per handshake,
        // so a reloaded one serves the next connection. No ALPN: echo and RPC have no registered names.
        var tls = new TlsHandshakeCallbackOptions
        {
            OnConnection = _ => ValueTask.FromResult(certificate.ServerOptions()),
            HandshakeTimeout = TimeSpan.FromSeconds(10),
        };

        foreach (var endpoint in endpoints)
        {
            var prefork = endpoint.Protocol is not null && endpoint.Model == ServerModels.Prefork;
            if (prefork != (worker is not null) || (worker is not null && !worker.Sockets.ContainsKey(endpoint.Key)))
            {
                // The supervisor leaves these to the workers; a worker serves what it was given sockets for
                // (a per-connection worker: its connection's listener alone).
                continue;
            }

            var stats = Stats.FirstOrDefault(s => s.Endpoint == endpoint);
            Listen(kestrel, endpoint, worker, options =>
            {
                _bound.Add((endpoint, options));
                if (endpoint.Protocol is ListenerProtocol.Echo or ListenerProtocol.Rpc)
                {
                    options.Use(middleware.For(stats!));
                    if (endpoint.Tls)
                    {
                        UseCountedTls(options, tls);
                    }
                }

                switch (endpoint.Protocol)
                {
                    case ListenerProtocol.Echo:
                        options.UseConnectionHandler<EchoHandler>();
                        break;
                    case ListenerProtocol.Rpc:
                        options.UseConnectionHandler<RpcHandler>();
                        break;
                    case ListenerProtocol.Ftp when endpoint.ImplicitTls:
                        // The FTP session runs this TLS itself (not Kestrel's middleware), with the certificate
                        // context its data connections use: only then do they resume the control session.
                        options.Use(middleware.For(stats!)).Use(next => connection =>
                        {
                            connection.Features.Set(FtpImplicitTlsFeature.Instance);
                            return next(connection);
                        }).UseConnectionHandler<FtpHandler>();
                        break;
                    case ListenerProtocol.Ftp:
                        options.Use(middleware.For(stats!)).UseConnectionHandler<FtpHandler>();
                        break;
                    case null:
                        options.Protocols = HttpProtocols.Http1;
                        break;
                    default:
                        throw new InvalidOperationException($"{endpoint.Key}: no handler for {endpoint.Protocol}");
                }
            });
        }
    }

    /// <summary>
    /// Kestrel's TLS middleware with each handshake's end reported to the connection's record (the
    /// <c>gateway.tls.handshakes</c> counter): success as soon as the middleware hands the connection on,
    /// failure when the connection ends without that. Kestrel's own TLS meter counts the same handshakes with
    /// timings, but a prefork worker's Kestrel meter is not forwarded to the supervisor; the Gateway meter is.
    /// </summary>
    private static void UseCountedTls(ListenOptions options, TlsHandshakeCallbackOptions tls)
    {
        options.Use(next => async connection =>
        {
            var handshake = new TlsHandshakeSeen();
            connection.Features.Set(handshake);
            try
            {
                await next(connection);
            }
            finally
            {
                if (!handshake.Succeeded)
                {
                    connection.Features.Get<IProtocolActivityFeature>()?.TlsHandshakeEnded("connection", succeeded: false);
                }
            }
        });
        options.UseHttps(tls);
        options.Use(next => connection =>
        {
            connection.Features.Get<TlsHandshakeSeen>()!.Succeeded = true;
            connection.Features.Get<IProtocolActivityFeature>()?.TlsHandshakeEnded("connection", succeeded: true);
            return next(connection);
        });
    }

    private sealed class TlsHandshakeSeen
    {
        public bool Succeeded { get; set; }
    }

    /// <summary>The endpoints as bound, with the ports the system chose for port 0. Valid once the server started.</summary>
    public IEnumerable<ListenerEndpoint> Bound()
    {
        lock (_preforkPorts)
        {
            return endpoints
                .Select(e => _bound.FirstOrDefault(b => b.Endpoint == e) is { Options: { } options }
                    ? e with { Port = options.IPEndPoint?.Port ?? (options.EndPoint as ModelEndPoint)?.Address.Port ?? e.Port }
                    : _preforkPorts.TryGetValue(e.Key, out var port) ? e with { Port = port } : null)
                .OfType<ListenerEndpoint>()
                .ToArray();
        }
    }

    /// <summary>Records the bound ports and logs one line per endpoint. Call once the server has started.</summary>
    public void OnStarted()
    {
        foreach (var endpoint in Bound())
        {
            foreach (var stats in Stats.Where(s => s.Endpoint.Key == endpoint.Key))
            {
                stats.Port = endpoint.Port;
            }

            if (endpoint.Protocol is null)
            {
                LogAdmin(logger, endpoint.Name, endpoint.Display);
            }
            else
            {
                var tls = endpoint switch
                {
                    { Tls: false } => "",
                    { ImplicitTls: true } => ", implicit TLS",
                    { Protocol: ListenerProtocol.Ftp, TlsRequired: true } => ", TLS required",
                    { Protocol: ListenerProtocol.Ftp } => ", AUTH TLS",
                    _ => ", TLS",
                };
                LogListener(logger, endpoint.Name, endpoint.Display, endpoint.Model + tls);
            }
        }
    }

    /// <summary>The listener whose port a bind failure names, to point the operator at the right key.</summary>
    public ListenerEndpoint? FindByPort(int port) => endpoints.FirstOrDefault(e => e.Port == port);

    /// <summary>The addresses a listener binds when it binds them one by one (every model but kestrel).</summary>
    public static IPAddress[] AddressesOf(ListenerEndpoint endpoint) =>
        endpoint.Address is null ? [IPAddress.IPv6Any]
        : endpoint.IsLocalhost && endpoint.Port != 0 ? [IPAddress.Loopback, IPAddress.IPv6Loopback]
        : [endpoint.Address];

    private static void Listen(KestrelServerOptions kestrel, ListenerEndpoint endpoint, WorkerRole? worker, Action<ListenOptions> configure)
    {
        if (worker is not null)
        {
            // A prefork worker: the supervisor's sockets. async: Kestrel's own event loop accepts on them (the
            // nginx worker); sync: the loop server's one-at-a-time accept (the classic prefork child).
            var sockets = worker.Sockets[endpoint.Key];
            var address = new IPEndPoint(IPAddress.IPv6Any, sockets.Port); // a name only: the socket exists
            foreach (var socket in sockets.Descriptors)
            {
                if (sockets.Connected)
                {
                    // per-connection: the one connection the supervisor accepted for this process.
                    kestrel.Listen(new ModelEndPoint(address, ModelTransportFactory.SingleConnection, endpoint.Key)
                    {
                        InheritedSocket = socket,
                        OnServed = () => worker.Served.TrySetResult(),
                    }, configure);
                }
                else if (worker.Mode == "sync")
                {
                    kestrel.Listen(new ModelEndPoint(address, "iterative", endpoint.Key) { InheritedSocket = socket }, configure);
                }
                else
                {
                    kestrel.ListenHandle((ulong)socket, configure);
                }
            }
        }
        else if (endpoint.Protocol is not null && endpoint.Model != ServerModels.Kestrel)
        {
            // An in-process model: ModelTransportFactory binds these (Kestrel's sockets bind plain IPEndPoints).
            foreach (var address in AddressesOf(endpoint))
            {
                var model = new ModelEndPoint(new IPEndPoint(address, endpoint.Port), endpoint.Model, endpoint.Key);
                kestrel.Listen(model, options =>
                {
                    configure(options);
                    // Kestrel's TLS middleware needs Kestrel's own dispatch (it requires a feature only that sets).
                    if (!(endpoint.Tls && endpoint.Protocol is ListenerProtocol.Echo or ListenerProtocol.Rpc))
                    {
                        model.Connections = options;
                    }
                });
            }
        }
        else if (endpoint.Address is null)
        {
            kestrel.ListenAnyIP(endpoint.Port, configure);
        }
        else if (endpoint.IsLocalhost && endpoint.Port != 0)
        {
            // Both loopbacks, as "localhost" means; Kestrel cannot do that with a system-chosen port.
            kestrel.ListenLocalhost(endpoint.Port, configure);
        }
        else
        {
            kestrel.Listen(new IPEndPoint(endpoint.Address, endpoint.Port), configure);
        }
    }

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "{Listener} listening on {Address} (model {Model})")]
    private static partial void LogListener(ILogger logger, string listener, string address, string model);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "{Listener} listening on http://{Address}")]
    private static partial void LogAdmin(ILogger logger, string listener, string address);
}
