using System.Globalization;
using System.Net;

namespace Gateway.Listeners;

/// <summary>One endpoint to open: a protocol listener or the admin HTTP endpoint.</summary>
/// <param name="Key">The configuration key that defines it, for messages: <c>Gateway:Listeners:Rpc</c>.</param>
/// <param name="Address">Null means every interface; <see cref="IPAddress.Loopback"/> with <paramref name="IsLocalhost"/> means both loopbacks.</param>
/// <param name="Tls">Echo and RPC: served over TLS. FTP: AUTH TLS offered (explicit FTPS).</param>
/// <param name="TlsRequired">FTP: TLS required before login and on data connections.</param>
/// <param name="ImplicitTls">FTP: TLS from the first byte (implicit FTPS), by Kestrel's TLS middleware.</param>
public sealed record ListenerEndpoint(string Key, string Name, ListenerProtocol? Protocol, string Model, IPAddress? Address, bool IsLocalhost, int Port,
    bool Tls = false, bool TlsRequired = false, bool ImplicitTls = false)
{
    /// <summary>The name of an FTP listener's implicit-TLS twin (its <c>ImplicitTlsPort</c>).</summary>
    public const string ImplicitFtpsName = "ftps";

    /// <summary>Every name a protocol listener can have: its protocol's, or <see cref="ImplicitFtpsName"/>.</summary>
    public static IReadOnlyList<string> ProtocolNames { get; } =
        [.. Enum.GetNames<ListenerProtocol>().Select(name => name.ToLowerInvariant()), ImplicitFtpsName];

    public string Display => Address switch
    {
        null => $"*:{Port}",
        _ when IsLocalhost => $"localhost:{Port}",
        _ => new IPEndPoint(Address, Port).ToString(), // brackets an IPv6 address
    };

    /// <summary>Whether two endpoints would compete for the same socket address.</summary>
    public bool Overlaps(ListenerEndpoint other) =>
        Port != 0 && Port == other.Port
        && (Address is null || other.Address is null || IsLocalhost || other.IsLocalhost || Address.Equals(other.Address));
}

/// <summary>
/// Reads and checks the <c>Gateway</c> section before anything starts. Every problem is one line that names
/// its key, so a bad setting stops the process with a message instead of a stack trace.
/// </summary>
public static class GatewayConfiguration
{
    public static bool TryLoad(
        IConfiguration configuration,
        out GatewayOptions options,
        out IReadOnlyList<ListenerEndpoint> endpoints,
        out IReadOnlyList<string> errors)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var problems = new List<string>();
        var found = new List<ListenerEndpoint>();
        options = new GatewayOptions();
        endpoints = found;
        errors = problems;

        var section = configuration.GetSection(GatewayOptions.SectionName);
        // Ports first, by hand: the binder's message for "abc" is about System.Int32, not about ports.
        foreach (var listener in section.GetSection("Listeners").GetChildren())
        {
            var port = listener["Port"];
            if (port is not null && !IsPort(port))
            {
                problems.Add($"{listener.Path}:Port: '{port}' is not a TCP port (0-65535)");
            }
        }

        // The same for the execution mode: the binder would name the enum's type, not the choices.
        if (section["Execution"] is { } execution && !Enum.GetNames<ExecutionMode>().Contains(execution, StringComparer.OrdinalIgnoreCase))
        {
            problems.Add($"{GatewayOptions.SectionName}:Execution: '{execution}' is not one of inline, pool");
        }

        if (problems.Count > 0)
        {
            return false;
        }

        try
        {
            section.Bind(options);
            section.GetSection("Listeners:Ftp").Bind(options.Ftp);
        }
        catch (InvalidOperationException e)
        {
            problems.Add(e.Message);
            return false;
        }

        foreach (var (name, listener) in options.Listeners)
        {
            var key = $"{GatewayOptions.SectionName}:Listeners:{name}";
            if (!Enum.TryParse<ListenerProtocol>(name, ignoreCase: true, out var protocol))
            {
                problems.Add($"{key}: '{name}' is not a protocol; listeners are {string.Join(", ", Enum.GetNames<ListenerProtocol>())}");
                continue;
            }

            if (!listener.Enabled)
            {
                continue;
            }

            var model = listener.Model.Trim().ToLowerInvariant();
            if (!ServerModels.All.Contains(model))
            {
                problems.Add($"{key}:Model: '{listener.Model}' is not a model; models are {string.Join(", ", ServerModels.All)}");
            }
            else if (!ServerModels.Available.Contains(model))
            {
                problems.Add($"{key}:Model: '{model}' is not available yet in this build (available: {string.Join(", ", ServerModels.Available)})");
            }

            if (protocol == ListenerProtocol.Ftp)
            {
                CheckFtp(key, options.Ftp, problems);
                if (model == ServerModels.Prefork && TryParsePortRange(options.Ftp.PassivePorts, out var first, out var last)
                    && last - first + 1 < options.Workers.EffectiveCount)
                {
                    problems.Add($"{key}:PassivePorts: {last - first + 1} port(s) cannot give each of {options.Workers.EffectiveCount} prefork workers its own passive port");
                }
            }

            if (!TryParseAddress(listener.Address, out var address, out var isLocalhost))
            {
                problems.Add($"{key}:Address: '{listener.Address}' is not an IP address, '*' or 'localhost'");
            }

            var tls = CheckTls(key, protocol, listener.Tls, options.Tls, problems);
            found.Add(new ListenerEndpoint(key, name.ToLowerInvariant(), protocol, model, address, isLocalhost, listener.Port,
                tls != "off", tls == "required"));
            if (protocol == ListenerProtocol.Ftp && options.Ftp.ImplicitTlsPort is { } implicitPort)
            {
                if (implicitPort is < 0 or > IPEndPoint.MaxPort)
                {
                    problems.Add($"{key}:ImplicitTlsPort: {implicitPort} is not a TCP port (0-65535)");
                }
                else if (string.IsNullOrWhiteSpace(options.Tls.CertificatePath))
                {
                    problems.Add($"{key}:ImplicitTlsPort: implicit FTPS needs a certificate: set {GatewayOptions.SectionName}:Tls:CertificatePath");
                }

                // The same FTP service behind a TLS-first port: its own listener (name "ftps"), the same model and address.
                found.Add(new ListenerEndpoint($"{key}:ImplicitTlsPort", ListenerEndpoint.ImplicitFtpsName, protocol, model, address, isLocalhost, implicitPort,
                    Tls: true, TlsRequired: true, ImplicitTls: true));
            }
        }

        if (TryParseAdminUrl(options.Admin.Url, out var admin, out var adminProblem))
        {
            found.Add(admin);
        }
        else
        {
            problems.Add($"{GatewayOptions.SectionName}:Admin:Url: {adminProblem}");
        }

        for (var i = 0; i < found.Count; i++)
        {
            for (var j = i + 1; j < found.Count; j++)
            {
                if (found[i].Overlaps(found[j]))
                {
                    problems.Add($"{found[j].Key}: port {found[j].Port} is already taken by {found[i].Key}");
                }
            }
        }

        if (string.IsNullOrWhiteSpace(options.Tls.CertificatePath) && (!string.IsNullOrEmpty(options.Tls.KeyPath) || !string.IsNullOrEmpty(options.Tls.Password)))
        {
            problems.Add($"{GatewayOptions.SectionName}:Tls:CertificatePath: KeyPath or Password is set, but no certificate");
        }

        CheckLimits(options.Limits, problems);
        if (options.Admin.CloseGraceSeconds < 0)
        {
            problems.Add($"{GatewayOptions.SectionName}:Admin:CloseGraceSeconds: must be 0 or more");
        }

        if (options.Workers.Count < 0)
        {
            problems.Add($"{GatewayOptions.SectionName}:Workers:Count: must be 0 (one per core) or more");
        }

        if (options.Models.ReactorThreads is < 0 or > 256)
        {
            problems.Add($"{GatewayOptions.SectionName}:Models:ReactorThreads: must be 0 (one per two cores) to 256");
        }

        if (options.Models.MaxThreads is < 0 or 1)
        {
            problems.Add($"{GatewayOptions.SectionName}:Models:MaxThreads: must be 0 (from the PID limits) or at least 2 (a connection takes two threads)");
        }

        if (!ServerModels.WorkerModes.Contains(options.Workers.Mode))
        {
            problems.Add($"{GatewayOptions.SectionName}:Workers:Mode: '{options.Workers.Mode}' is not one of {string.Join(", ", ServerModels.WorkerModes)}");
        }
        else if (!ServerModels.AvailableWorkerModes.Contains(options.Workers.Mode))
        {
            problems.Add($"{GatewayOptions.SectionName}:Workers:Mode: '{options.Workers.Mode}' is not available yet in this build (available: {string.Join(", ", ServerModels.AvailableWorkerModes)})");
        }

        if (options.Workers.Count > 256)
        {
            problems.Add($"{GatewayOptions.SectionName}:Workers:Count: at most 256");
        }

        if (options.Workers.MaxProcesses < 0)
        {
            problems.Add($"{GatewayOptions.SectionName}:Workers:MaxProcesses: must be 0 (64 per core) or more");
        }

        return problems.Count == 0;
    }

    /// <summary>The passive range as two ports, when the text is "first-last" with 1024 ≤ first ≤ last ≤ 65535.</summary>
    public static bool TryParsePortRange(string? text, out int first, out int last)
    {
        first = last = 0;
        var parts = text?.Split('-', StringSplitOptions.TrimEntries);
        return parts is [var a, var b]
            && int.TryParse(a, NumberStyles.None, CultureInfo.InvariantCulture, out first)
            && int.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out last)
            && first >= 1024 && first <= last && last <= IPEndPoint.MaxPort;
    }

    /// <summary>
    /// The listener's TLS mode — echo and RPC: <c>off</c> or <c>on</c>; FTP: <c>off</c>, <c>explicit</c> (the default
    /// when a certificate is configured) or <c>required</c>. A bad or unavailable setting is a problem.
    /// </summary>
    private static string CheckTls(string key, ListenerProtocol protocol, string? setting, TlsOptions tls, List<string> problems)
    {
        var value = setting?.Trim().ToLowerInvariant();
        var certificate = !string.IsNullOrWhiteSpace(tls.CertificatePath);
        string mode;
        if (protocol == ListenerProtocol.Ftp)
        {
            mode = value is null or "" ? (certificate ? "explicit" : "off") : value;
            if (mode == "implicit")
            {
                problems.Add($"{key}:Tls: implicit FTPS has a port of its own: set {key}:ImplicitTlsPort (990 by custom) and keep Tls explicit or required here");
                return "off";
            }

            if (mode is not ("off" or "explicit" or "required"))
            {
                problems.Add($"{key}:Tls: '{setting}' is not one of off, explicit, required");
                return "off";
            }
        }
        else if (value is null or "" or "false" or "true")
        {
            mode = value == "true" ? "on" : "off";
        }
        else
        {
            problems.Add($"{key}:Tls: '{setting}' is not true or false");
            return "off";
        }

        if (mode != "off" && !certificate)
        {
            problems.Add($"{key}:Tls: '{setting}' needs a certificate: set {GatewayOptions.SectionName}:Tls:CertificatePath (and KeyPath for a PEM key in its own file)");
        }

        return mode;
    }

    private static void CheckFtp(string key, FtpListenerOptions ftp, List<string> problems)
    {
        if (string.IsNullOrWhiteSpace(ftp.Root))
        {
            problems.Add($"{key}:Root: must name a directory");
        }

        if (!TryParsePortRange(ftp.PassivePorts, out _, out _))
        {
            problems.Add($"{key}:PassivePorts: '{ftp.PassivePorts}' is not a range such as 50000-50099 (ports 1024-65535)");
        }

        if (!string.IsNullOrEmpty(ftp.PassiveAddress) && !IPAddress.TryParse(ftp.PassiveAddress, out _))
        {
            problems.Add($"{key}:PassiveAddress: '{ftp.PassiveAddress}' is not an IP address");
        }

        if (ftp.MaxUploadBytes < 0)
        {
            problems.Add($"{key}:MaxUploadBytes: must be 0 (no limit) or more");
        }

        if (ftp.MaxPassiveListenersPerAddress < 1)
        {
            problems.Add($"{key}:MaxPassiveListenersPerAddress: {ftp.MaxPassiveListenersPerAddress} is not 1 or more");
        }

        if (ftp.LoginFailureDelaySeconds is < 0 or > 60 || ftp.MaxLoginFailuresPerAddress < 1 || ftp.LockoutSeconds < 0)
        {
            problems.Add($"{key}:LoginFailureDelaySeconds, MaxLoginFailuresPerAddress, LockoutSeconds: need 0-60 s, at least 1, and 0 or more");
        }

        if (ftp.MaxConcurrentLogins is < 1 or > 64)
        {
            problems.Add($"{key}:MaxConcurrentLogins: need 1-64 (threads hashing passwords at once)");
        }

        if (ftp.MaxQueuedLogins is < 0 or > 100_000)
        {
            problems.Add($"{key}:MaxQueuedLogins: need 0-100000");
        }

        if (ftp.LoginQueueTimeoutSeconds is < 1 or > 600)
        {
            problems.Add($"{key}:LoginQueueTimeoutSeconds: need 1-600 s");
        }

        if (ftp.LoginCacheSeconds is < 0 or > 86_400)
        {
            problems.Add($"{key}:LoginCacheSeconds: need 0 (off) to 86400 s");
        }

        for (var i = 0; i < ftp.Users.Count; i++)
        {
            var user = ftp.Users[i];
            if (string.IsNullOrWhiteSpace(user.Name) || ftp.Users.Take(i).Any(u => u.Name == user.Name))
            {
                problems.Add($"{key}:Users:{i}:Name: '{user.Name}' is empty or a duplicate");
            }

            if (!Gateway.Protocols.Ftp.FtpPasswordHasher.IsWellFormed(user.PasswordHash))
            {
                problems.Add($"{key}:Users:{i}:PasswordHash: not a hash from 'Gateway hash-password'");
            }
        }
    }

    private static void CheckLimits(LimitsOptions limits, List<string> problems)
    {
        const string key = $"{GatewayOptions.SectionName}:Limits";
        if (limits.MaxConnections < 1)
        {
            problems.Add($"{key}:MaxConnections: must be at least 1");
        }

        if (limits.MaxConnectionsPerIp < 0)
        {
            problems.Add($"{key}:MaxConnectionsPerIp: must be 0 (no limit) or more");
        }

        // A frame must fit in one pipe segment chain the transport is allowed to buffer; 1 GiB is far past sane.
        if (limits.MaxFrameBytes is < 1 or > 1 << 30)
        {
            problems.Add($"{key}:MaxFrameBytes: must be between 1 and {1 << 30}");
        }

        if (limits.IdleTimeoutSeconds < 0)
        {
            problems.Add($"{key}:IdleTimeoutSeconds: must be 0 (never) or more");
        }

        if (limits.ShutdownTimeoutSeconds < 0)
        {
            problems.Add($"{key}:ShutdownTimeoutSeconds: must be 0 or more");
        }

        if (!(limits.MinDataRateBytesPerSecond >= 0) || double.IsInfinity(limits.MinDataRateBytesPerSecond))
        {
            problems.Add($"{key}:MinDataRateBytesPerSecond: must be 0 (off) or more");
        }

        if (!(limits.MinDataRateGraceSeconds >= 0) || limits.MinDataRateGraceSeconds > TimeSpan.MaxValue.TotalSeconds / 2)
        {
            problems.Add($"{key}:MinDataRateGraceSeconds: must be 0 or more");
        }
    }

    private static bool IsPort(string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port <= IPEndPoint.MaxPort;

    private static bool TryParseAddress(string? value, out IPAddress? address, out bool isLocalhost)
    {
        isLocalhost = false;
        address = null;
        switch (value?.Trim())
        {
            case null or "" or "*" or "+":
                return true;
            case var s when s.Equals("localhost", StringComparison.OrdinalIgnoreCase):
                isLocalhost = true;
                address = IPAddress.Loopback;
                return true;
            case var s:
                return IPAddress.TryParse(s.Trim('[', ']'), out address);
        }
    }

    private static bool TryParseAdminUrl(string url, out ListenerEndpoint endpoint, out string problem)
    {
        endpoint = null!;
        problem = "";
        // Uri rejects '*' and '+' as hosts; they mean "every interface", as in ASP.NET Core's own URLs.
        var normalized = url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal);
        if (!Uri.TryCreate(normalized, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp)
        {
            problem = $"'{url}' is not an http:// URL such as http://127.0.0.1:8080";
            return false;
        }

        if (uri.AbsolutePath != "/")
        {
            problem = $"'{url}' has a path; the admin API is served at the root";
            return false;
        }

        if (!TryParseAddress(uri.Host, out var address, out var isLocalhost))
        {
            problem = $"'{uri.Host}' is not an IP address, '*' or 'localhost'";
            return false;
        }

        endpoint = new ListenerEndpoint($"{GatewayOptions.SectionName}:Admin:Url", "admin", null, "http", address, isLocalhost, uri.Port);
        return true;
    }
}
