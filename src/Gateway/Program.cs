using Gateway.Admin;
using Gateway.Listeners;
using Gateway.Protocols.Ftp;
using Gateway.Telemetry;
using Gateway.Workers;

// `Gateway hash-password [password]`: the hash for an FTP user's PasswordHash, and nothing else on stdout.
// Without the argument the password is read from stdin, which keeps it out of `ps` and shell history.
if (args is ["hash-password", .. var rest])
{
    var password = rest is [var given] ? given : Console.In.ReadLine();
    if (string.IsNullOrEmpty(password) || rest.Length > 1)
    {
        await Console.Error.WriteLineAsync("usage: Gateway hash-password [password]   (without it, the password is read from stdin)");
        return 2;
    }

    Console.WriteLine(FtpPasswordHasher.Hash(password));
    return 0;
}

// `Gateway worker ...`: a worker process of the prefork pool, started by the gateway itself.
if (args is [WorkerHost.Argument, .. var workerArgs])
{
    return await WorkerHost.RunAsync(workerArgs);
}

// Composition only: configuration → listeners → admin endpoints and telemetry → run.
var (builder, options, endpoints) = await GatewayHost.CreateBuilderAsync(args, "Gateway");
if (builder is null)
{
    return 2;
}

builder.AddGateway(options, endpoints);

var app = builder.Build();
app.UseCrossOriginProtection();
app.UseProblemStatusPages();
app.UseAdminOpenApi();
app.MapHealthEndpoints();
app.MapAdminEndpoints();
app.MapAdminUi();
app.MapGatewayMetrics();
return await app.RunGatewayAsync();
