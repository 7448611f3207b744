namespace Gateway.Tests;

/// <summary>One gateway, on default settings and loopback ports, shared by the protocol tests.</summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    private GatewayProcess? _gateway;

    internal GatewayProcess Gateway => _gateway ?? throw new InvalidOperationException("not started");

    public async Task InitializeAsync() => _gateway = await GatewayProcess.StartAsync();

    public async Task DisposeAsync()
    {
        if (_gateway is not null)
        {
            await _gateway.DisposeAsync();
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SharedGateway : ICollectionFixture<GatewayFixture>
{
    public const string Name = "gateway";
}

/// <summary>The I/O models every protocol test runs on: one test body, one run per model.</summary>
public static class Models
{
    /// <summary>The in-process models.</summary>
    public static readonly string[] Names = ["kestrel", "epoll", "epoll-et", "poll", "select", "threads", "iterative"];

    /// <summary>The prefork pool, two workers, in each of its modes ("prefork" is async).</summary>
    public static readonly string[] Pools = ["prefork", "prefork-sync", "prefork-per-connection"];

    /// <summary>Every way to serve a listener: the protocol suites run on each.</summary>
    public static TheoryData<string> All => [.. Names, .. Pools];

    /// <summary>
    /// The models that serve many clients at the same time: all but the loop server, which takes one at a
    /// time, and the sync pool, which takes one per worker. (The per-connection pool does serve many, but a
    /// process each: a thousand clients would be a thousand .NET processes on a two-core machine.)
    /// </summary>
    public static TheoryData<string> Concurrent =>
        [.. Names.Concat(Pools).Where(n => n is not ("iterative" or "prefork-sync" or "prefork-per-connection"))];

    /// <summary>The in-process models alone (the admin API does not list a pool's connections yet).</summary>
    public static TheoryData<string> InProcess => [.. Names];

    /// <summary>The settings that put the given listeners on <paramref name="model"/>.</summary>
    public static string[] Args(string model, params string[] listeners)
    {
        var (name, extra) = model switch
        {
            "prefork" => ("prefork", new[] { "--Gateway:Workers:Count=2", "--Gateway:Workers:Mode=async" }),
            "prefork-sync" => ("prefork", new[] { "--Gateway:Workers:Count=2", "--Gateway:Workers:Mode=sync" }),
            "prefork-per-connection" => ("prefork", new[] { "--Gateway:Workers:Mode=per-connection" }),
            _ => (model, Array.Empty<string>()),
        };
        return [.. listeners.Select(l => $"--Gateway:Listeners:{l}:Model={name}"), .. extra];
    }
}

/// <summary>Something started once per model on first use, and all of them stopped together at the end.</summary>
internal sealed class PerModel<T>(Func<string, Task<T>> start, Func<T, Task> stop)
{
    private readonly Dictionary<string, Task<T>> _started = [];

    public Task<T> For(string model)
    {
        lock (_started)
        {
            if (!_started.TryGetValue(model, out var started))
            {
                started = start(model);
                _started[model] = started;
            }

            return started;
        }
    }

    public async Task StopAllAsync()
    {
        foreach (var started in _started.Values)
        {
            try
            {
                await stop(await started);
            }
            catch (InvalidOperationException)
            {
                // it never started; its start stopped it already
            }
        }
    }
}

/// <summary>
/// One gateway per I/O model, started on first use with every listener on that model, shared by the
/// protocol tests and stopped (by pid) at the end.
/// </summary>
public sealed class ModelGatewaysFixture : IAsyncLifetime
{
    private readonly PerModel<GatewayProcess> _gateways = new(
        model => GatewayProcess.StartAsync(
        [
            .. GatewayProcess.LoopbackArgs,
            .. Models.Args(model, "Echo", "Rpc", "Ftp"),
        ]),
        gateway => gateway.DisposeAsync().AsTask());

    internal Task<GatewayProcess> For(string model) => _gateways.For(model);

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync() => _gateways.StopAllAsync();
}

[CollectionDefinition(Name)]
public sealed class ModelGateways : ICollectionFixture<ModelGatewaysFixture>
{
    public const string Name = "models";
}
