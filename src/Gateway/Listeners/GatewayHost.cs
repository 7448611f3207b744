using System.Net;
using System.Net.Security;
using System.Text.RegularExpressions;
using Gateway.Admin;
using Gateway.Connections;
using Gateway.Models;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection.Extensions;
using System.Net.Sockets;
using System.Security.Authentication;
using Gateway.Protocols;
using Gateway.Protocols.Ftp;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Gateway.Telemetry;
using Gateway.Workers;

namespace Gateway.Listeners;

/// <summary>Wiring and running the host: everything Program.cs composes, and the clean failures at start.</summary>
public static partial class GatewayHost
{
    private const string InlineSocketCompletions = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// The content root holds appsettings.json: the current directory when it has one (the binary started
    /// from the repository root or a deployment folder), else the binary's own folder, which carries a copy
    /// of the repository's file (`dotnet run` starts the process in src/Gateway, so it lands here).
    /// </summary>
    public static string LocateContentRoot()
    {
        var current = Directory.GetCurrentDirectory();
        return File.Exists(Path.Combine(current, "appsettings.json")) ? current : AppContext.BaseDirectory;
    }

    /// <param name="worker">Set in a prefork worker process: it serves the prefork listeners on the sockets it was passed.</param>
    /// <summary>
    /// The host builder with the checked configuration; null (each problem printed as one line, after
    /// <paramref name="who"/>) when the configuration is bad.
    /// </summary>
    public static async Task<(WebApplicationBuilder? Builder, GatewayOptions Options, IReadOnlyList<ListenerEndpoint> Endpoints)> CreateBuilderAsync(
        string[] args, string who)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = LocateContentRoot() });
        if (GatewayConfiguration.TryLoad(builder.Configuration, out var options, out var endpoints, out var errors))
        {
            if (ServerCertificate.Check(options.Tls, builder.Environment.ContentRootPath) is not { } problem)
            {
                return (builder, options, endpoints);
            }

            errors = [problem];
        }

        foreach (var error in errors)
        {
            await Console.Error.WriteLineAsync($"{who}: configuration error: {error}");
        }

        return (null, options, endpoints);
    }

    public static void AddGateway(this WebApplicationBuilder builder, GatewayOptions options, IReadOnlyList<ListenerEndpoint> endpoints, WorkerRole? worker = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(options);
        var limits = options.Limits;
        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(limits);
        builder.Services.AddSingleton(options.Admin);
        builder.Services.AddSingleton(options.Tls);
        builder.Services.AddSingleton<ServerCertificate>();
        builder.Services.AddSingleton(new ProtocolLimits
        {
            MaxFrameBytes = limits.MaxFrameBytes,
            IdleTimeout = TimeSpan.FromSeconds(limits.IdleTimeoutSeconds),
            MinDataRate = limits.MinDataRateBytesPerSecond,
            MinDataRateGrace = TimeSpan.FromSeconds(limits.MinDataRateGraceSeconds),
        });
        var contentRoot = builder.Environment.ContentRootPath;
        var ftpEndpoints = endpoints.Where(e => e.Protocol == ListenerProtocol.Ftp).ToArray();
        builder.Services.AddSingleton(sp => FtpOptionsFrom(options.Ftp, contentRoot, limits, worker, ftpEndpoints, sp.GetRequiredService<ServerCertificate>()));
        builder.Services.AddSingleton<FtpLoginGuard>();
        builder.Services.AddSingleton<FtpPassiveListeners>();
        builder.Services.AddSingleton<FtpLoginCache>();
        builder.Services.AddSingleton<FtpPasswordVerifier>();
        builder.Services.AddSingleton<FtpAuthenticator>();
        builder.Services.AddSingleton<ConnectionAdmission>();
        builder.Services.AddSingleton<ConnectionRegistry>();
        builder.Services.AddSingleton<ConnectionMiddleware>();
        builder.Services.AddSingleton<ConnectionCloser>();
        builder.Services.AddSingleton(sp => new GatewayListeners(endpoints, sp.GetRequiredService<ILogger<GatewayListeners>>(), worker));
        var stopper = new AcceptStopper();
        builder.Services.AddSingleton(stopper);
        builder.Services.AddSingleton<GatewayDrain>();
        if (worker is null)
        {
            // SIGTERM drains with the admin endpoint still up (a worker drains when its supervisor says so).
            builder.Services.AddSingleton<IHostLifetime, GatewayLifetime>();

            // Started after Kestrel has bound the other listeners; binds the prefork ones and starts the workers.
            builder.Services.AddSingleton<WorkerPool>();
            builder.Services.AddHostedService(sp =>
            {
                // The metrics take the workers' deltas from the pool's first heartbeat on: made before it starts.
                sp.GetRequiredService<GatewayMetrics>();
                return sp.GetRequiredService<WorkerPool>();
            });

            // The dashboard's one-second samples (the admin endpoint is the supervisor's alone).
            builder.Services.AddSingleton<AdminStats>();
            builder.Services.AddHostedService(sp => sp.GetRequiredService<AdminStats>());
        }

        builder.Services.AddGatewayTelemetry(builder.Configuration);
        builder.Services.AddProblemDetails();
        builder.Services.ConfigureHttpJsonOptions(json => json.SerializerOptions.TypeInfoResolverChain.Insert(0, AdminJsonContext.Default));
        builder.Services.AddAdminOpenApi();
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = TimeSpan.FromSeconds(limits.ShutdownTimeoutSeconds));

        if (options.Execution == ExecutionMode.Inline && Environment.GetEnvironmentVariable(InlineSocketCompletions) is null)
        {
            // Run to completion on kestrel too: the socket engine completes a read on its epoll thread instead of
            // handing it to the thread pool first (one context switch per request less). The runtime reads this
            // when it makes its first socket, which has not happened yet; a value in the environment wins.
            Environment.SetEnvironmentVariable(InlineSocketCompletions, "1");
        }

        builder.WebHost.UseSockets(sockets =>
        {
            // The input pipe pauses the socket at this many unread bytes. It must hold a whole largest frame
            // plus its header, or a frame of exactly MaxFrameBytes could never complete (the reader waits for
            // bytes the paused transport will not read).
            sockets.MaxReadBufferSize = Math.Max(1024 * 1024, limits.MaxFrameBytes + 64 * 1024);
            // Inline execution: the handler continues on the thread that completed the socket read (one of the
            // socket engine's thread-pool dispatches), not after a second hop through Kestrel's I/O queue.
            sockets.UnsafePreferInlineScheduling = options.Execution == ExecutionMode.Inline;
            // Urgent data stays in the stream: FTP clients send IAC IP / IAC DM as urgent before ABOR, and
            // without this Linux drops that byte (then "ABOR\r\n" arrives as "ABOR\r"). Accepted sockets
            // inherit it; for echo and RPC it means no byte a client sends is lost either.
            sockets.CreateBoundListenSocket = endpoint =>
            {
                if (endpoint is FileHandleEndPoint passed)
                {
                    // A prefork worker's socket, passed by the supervisor. Kestrel's default wraps such a handle
                    // without owning it (systemd keeps its sockets); this worker must close its copy when it stops
                    // accepting, or the port keeps queueing clients for a worker that is draining.
                    return new Socket(new SafeSocketHandle((nint)passed.FileHandle, ownsHandle: true));
                }

                var socket = SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
                if (endpoint is IPEndPoint)
                {
                    socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.OutOfBandInline, true);
                    stopper.Track(socket); // a drain closes the protocol ones while the admin endpoint serves on
                }

                return socket;
            };
        });
        // The in-process models, beside Kestrel's socket transport (each binds only its own kind of endpoint).
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IConnectionListenerFactory, ModelTransportFactory>());
        builder.WebHost.ConfigureKestrel((context, kestrel) =>
        {
            var services = kestrel.ApplicationServices;
            services.GetRequiredService<GatewayListeners>().Configure(kestrel, services.GetRequiredService<ConnectionMiddleware>(), services.GetRequiredService<ServerCertificate>());
        });
    }

    private static FtpOptions FtpOptionsFrom(FtpListenerOptions ftp, string contentRoot, LimitsOptions limits, WorkerRole? worker,
        ListenerEndpoint[] endpoints, ServerCertificate certificate)
    {
        // Checked at start when the FTP listener is enabled; a disabled one may keep any text here.
        if (!GatewayConfiguration.TryParsePortRange(ftp.PassivePorts, out var first, out var last))
        {
            (first, last) = (50000, 50099);
        }

        if (worker is { Mode: not "per-connection" })
        {
            // A PASV data connection must reach the worker that owns the control session, so each worker
            // listens on its own slice of the range (checked at start to leave every worker at least one port).
            // A per-connection worker binds whichever port of the whole range is free, as the gateway does.
            var size = (last - first + 1) / worker.Workers;
            first += worker.Index * size;
            last = first + size - 1;
        }

        return new FtpOptions
        {
            Root = Path.GetFullPath(ftp.Root, contentRoot),
            Users = ftp.Users.Select(u => new FtpUser(u.Name, u.PasswordHash, u.ReadOnly, u.Home, u.RequireTls)).ToArray(),
            AllowAnonymous = ftp.AllowAnonymous,
            AtomicUploads = ftp.AtomicUploads,
            PassivePortMin = first,
            PassivePortMax = last,
            PassiveAddress = string.IsNullOrEmpty(ftp.PassiveAddress) ? null : IPAddress.Parse(ftp.PassiveAddress),
            MaxUploadBytes = ftp.MaxUploadBytes,
            LoginFailureDelay = TimeSpan.FromSeconds(ftp.LoginFailureDelaySeconds),
            MaxLoginFailuresPerAddress = ftp.MaxLoginFailuresPerAddress,
            MaxPassiveListenersPerAddress = ftp.MaxPassiveListenersPerAddress,
            LockoutDuration = TimeSpan.FromSeconds(ftp.LockoutSeconds),
            MaxConcurrentLogins = ftp.MaxConcurrentLogins,
            MaxQueuedLogins = ftp.MaxQueuedLogins,
            LoginQueueTimeout = TimeSpan.FromSeconds(ftp.LoginQueueTimeoutSeconds),
            LoginCacheDuration = TimeSpan.FromSeconds(ftp.LoginCacheSeconds),
            DataTimeout = TimeSpan.FromSeconds(Math.Clamp(limits.IdleTimeoutSeconds, 1, 30)),
            // AUTH TLS and PROT P share the listeners' certificate context (so data connections can resume the
            // control connection's session), looked up per handshake so a reloaded certificate applies. TLS 1.2:
            // with 1.3 the server sends session tickets after the handshake, a client that only uploads (curl)
            // never reads them, and closing a socket with unread data sends a reset that can cost the server the
            // upload's tail and close_notify — 5 of 12 curl uploads failed that way here, none with 1.2.
            Tls = endpoints.Any(e => e.Tls) && certificate.IsConfigured ? FtpsServerOptions(certificate) : null,
            RequireTls = endpoints.FirstOrDefault(e => !e.ImplicitTls) is { TlsRequired: true },
        };
    }

    /// <summary>
    /// FTPS handshakes: TLS 1.2 (see above) and ALPN "ftp", the IANA name. A client naming only other
    /// protocols — a browser sent to the FTP port by a hostile page, the ALPACA cross-protocol attack — is refused
    /// in the handshake (no_application_protocol, as RFC 7301 allows); a client naming none (curl, lftp, ftplib)
    /// is served as before.
    /// </summary>
    private static Func<SslServerAuthenticationOptions> FtpsServerOptions(ServerCertificate certificate) => () =>
    {
        var options = certificate.ServerOptions(SslProtocols.Tls12);
        options.ApplicationProtocols = [new SslApplicationProtocol("ftp")];
        return options;
    };

    /// <summary>Starts, logs the bound addresses, waits for SIGTERM/Ctrl+C and drains. Returns the exit code.</summary>
    public static async Task<int> RunGatewayAsync(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var listeners = app.Services.GetRequiredService<GatewayListeners>();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway");
        try
        {
            await app.StartAsync();
        }
        catch (IOException e) when (BindFailure().Match(e.Message) is { Success: true } match)
        {
            var port = int.Parse(match.Groups["port"].Value, System.Globalization.CultureInfo.InvariantCulture);
            var key = listeners.FindByPort(port)?.Key ?? "Gateway:Listeners";
            await Console.Error.WriteLineAsync($"Gateway: {key}: cannot listen on {match.Groups["address"].Value}: {e.InnerException?.Message ?? e.Message}");
            return 1;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The host's own "failed to start" log is turned down (appsettings.json) so that the expected
            // failure above stays one line; anything else is unexpected and keeps its stack trace.
            await Console.Error.WriteLineAsync($"Gateway: failed to start: {e}");
            return 1;
        }

        listeners.OnStarted();
        if (!app.Services.GetRequiredService<ServerCertificate>().IsConfigured)
        {
            LogTlsOff(logger);
        }

        LogStarted(logger, Environment.ProcessId, app.Environment.ContentRootPath);
        var admin = app.Services.GetRequiredService<AdminOptions>();
        var reachableFromOutside = listeners.Admin.Address is null || !IPAddress.IsLoopback(listeners.Admin.Address);
        if (reachableFromOutside && string.IsNullOrEmpty(admin.ApiKey))
        {
            LogOpenAdmin(logger, listeners.Admin.Display);
        }

        await app.WaitForShutdownAsync();
        LogStopped(logger);
        return 0;
    }

    // Kestrel: "Failed to bind to address http://127.0.0.1:7007: address already in use."
    [GeneratedRegex(@"address (?:\w+://)?(?<address>\S*?:(?<port>\d+)):")]
    private static partial Regex BindFailure();

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "!!! The admin API on {Address} is reachable beyond this machine and has no API key: anyone who can reach it can list and close connections. Set Gateway:Admin:ApiKey, or bind Gateway:Admin:Url to 127.0.0.1.")]
    private static partial void LogOpenAdmin(ILogger logger, string address);

    [LoggerMessage(EventId = 5, Level = LogLevel.Information, Message = "TLS is off: no certificate (Gateway:Tls:CertificatePath); listeners with Tls true cannot be configured")]
    private static partial void LogTlsOff(ILogger logger);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Gateway stopped")]
    private static partial void LogStopped(ILogger logger);

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Gateway started (pid {Pid}, content root {ContentRoot}); Ctrl+C or SIGTERM drains and stops it")]
    private static partial void LogStarted(ILogger logger, int pid, string contentRoot);
}
