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
    public static readonly string[] Names = ["kestrel", "epoll", "epoll-et", "poll", "select", "threads", "iterative"];

    public static TheoryData<string> All => [.. Names];

    /// <summary>The models that serve clients at the same time: all but the loop server, which takes one at a time.</summary>
    public static TheoryData<string> Concurrent => [.. Names.Where(n => n != "iterative")];
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
            $"--Gateway:Listeners:Echo:Model={model}", $"--Gateway:Listeners:Rpc:Model={model}", $"--Gateway:Listeners:Ftp:Model={model}",
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
