using System.Globalization;
using System.Net.Sockets;
using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Telemetry;

namespace Gateway.Workers;

/// <summary>
/// A worker process of the prefork pool (<c>Gateway worker [the supervisor's arguments]</c>): it connects to
/// the supervisor's control channel, receives its listen sockets, and runs the same host — same handlers,
/// middleware and registry — on those sockets only (no admin API: the supervisor serves that). It heart-beats
/// every second, drains when told, and exits at once when the channel ends, which is how it dies with a
/// supervisor killed by SIGKILL (no orphans; <c>PR_SET_PDEATHSIG</c> would fire when the supervisor's
/// spawning <em>thread</em> exits, and .NET's thread pool retires threads).
/// </summary>
public static partial class WorkerHost
{
    public const string Argument = "worker";
    public const string ControlVariable = "GATEWAY_WORKER_CONTROL";
    public const string IndexVariable = "GATEWAY_WORKER_INDEX";
    public const string TokenVariable = "GATEWAY_WORKER_TOKEN";

    /// <summary>The exit code of a worker whose supervisor went away.</summary>
    public const int SupervisorGone = 3;

    public static async Task<int> RunAsync(string[] args)
    {
        var controlPath = Environment.GetEnvironmentVariable(ControlVariable);
        if (string.IsNullOrEmpty(controlPath)
            || !int.TryParse(Environment.GetEnvironmentVariable(IndexVariable), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
        {
            await Console.Error.WriteLineAsync("Gateway: 'worker' is started by the gateway itself for the prefork model, not by hand");
            return 2;
        }

        var token = Environment.GetEnvironmentVariable(TokenVariable) ?? "";
        Environment.SetEnvironmentVariable(TokenVariable, null);

        // The hello and the sockets go over the channel before anything else uses it (blocking, with a limit).
        var control = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        ControlMessage sockets;
        int[] descriptors;
        try
        {
            control.Connect(new UnixDomainSocketEndPoint(controlPath));
            control.Send(ControlChannel.Frame(new ControlMessage(ControlMessage.Hello) { Index = index, Pid = Environment.ProcessId, Token = token }));
            sockets = ControlChannel.ReceiveWithDescriptors(control, TimeSpan.FromSeconds(30), out descriptors);
        }
        catch (Exception e) when (e is SocketException or IOException or TimeoutException or InvalidDataException or System.Text.Json.JsonException)
        {
            control.Dispose();
            await Console.Error.WriteLineAsync($"Gateway: worker {index}: no sockets from the supervisor: {e.Message}");
            return SupervisorGone;
        }

        var (builder, options, endpoints) = await GatewayHost.CreateBuilderAsync(args, $"Gateway: worker {index}");
        if (builder is null)
        {
            return 2;
        }

        var role = new WorkerRole(index, sockets.Workers ?? 1, options.Workers.Mode, Assign(sockets, descriptors));
        builder.AddGateway(options, endpoints, role);
        using var measurements = new WorkerMeasurements(GatewayMetrics.MeterName);
        await using var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Worker");
        await app.StartAsync();

        await using var channel = new ControlChannel(control);
        await channel.SendAsync(new ControlMessage(ControlMessage.Ready));
        var listeners = app.Services.GetRequiredService<GatewayListeners>();
        foreach (var stats in listeners.Stats)
        {
            stats.Port = role.Sockets[stats.Endpoint.Key].Port;
        }

        var served = string.Join(", ", listeners.Stats.Select(s => s.Endpoint.Name));
        if (role.Mode != "per-connection")
        {
            LogServing(logger, index, Environment.ProcessId, served, role.Mode); // not once per connection
        }

        var lifetime = app.Lifetime;
        var registry = app.Services.GetRequiredService<ConnectionRegistry>();
        var durations = app.Services.GetRequiredService<RequestDurations>();
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(lifetime.ApplicationStopping);
        var heartbeats = HeartbeatAsync(channel, () => Heartbeat(registry, listeners, measurements, durations), stop.Token);
        _ = ListenAsync(channel, app.Services, logger, index);
        _ = role.Served.Task.ContinueWith(_ => lifetime.StopApplication(), CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        await app.WaitForShutdownAsync();
        await stop.CancelAsync();
        await heartbeats;
        try
        {
            // The last word: counters as they ended (a per-connection worker's whole life).
            await channel.SendAsync(Heartbeat(registry, listeners, measurements, durations), CancellationToken.None);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException)
        {
            // the supervisor is gone
        }

        if (role.Mode != "per-connection")
        {
            LogStopped(logger, index);
        }

        return 0;
    }

    /// <summary>Which passed descriptors serve which listener, in the order the supervisor passed them.</summary>
    private static Dictionary<string, WorkerSockets> Assign(ControlMessage sockets, int[] descriptors)
    {
        var assigned = new Dictionary<string, WorkerSockets>();
        var next = 0;
        foreach (var listener in sockets.Listeners ?? [])
        {
            if (next + listener.Count > descriptors.Length)
            {
                throw new InvalidDataException($"the supervisor named {listener.Count} sockets for {listener.Key} but passed fewer");
            }

            assigned[listener.Key] = new WorkerSockets(listener.Port, descriptors[next..(next + listener.Count)], listener.Connected);
            next += listener.Count;
        }

        return assigned;
    }

    /// <summary>
    /// Every second: alive, and this worker's counters (the supervisor exports them, tagged with the worker).
    /// Stopping ends the wait between heartbeats, never a send: a heartbeat carries the deltas it took from the
    /// measurements, and a send cancelled half way would lose them.
    /// </summary>
    private static async Task HeartbeatAsync(ControlChannel channel, Func<ControlMessage> heartbeat, CancellationToken stop)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(stop))
            {
                await channel.SendAsync(heartbeat(), CancellationToken.None);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            // stopping, or the channel is gone (ListenAsync exits the process then)
        }
    }

    private static ControlMessage Heartbeat(ConnectionRegistry registry, GatewayListeners listeners, WorkerMeasurements measurements,
        RequestDurations durations)
    {
        var counts = listeners.Stats.Select(l =>
        {
            var (liveIn, liveOut) = registry.LiveBytes(l);
            return new ListenerCounts(l.Endpoint.Key, l.Active, l.Accepted, l.ClosedBytesIn + liveIn, l.ClosedBytesOut + liveOut);
        });
        MetricDelta[] deltas = [.. measurements.TakeDeltas(), .. durations.TakeDeltas()];
        return new ControlMessage(ControlMessage.Heartbeat)
        {
            Connections = registry.Count,
            Counts = [.. counts],
            Metrics = deltas.Length == 0 ? null : deltas,
        };
    }

    /// <summary>
    /// The supervisor's requests: drain, and the admin API's questions about this worker's connections. Exits
    /// at once if the supervisor is gone.
    /// </summary>
    private static async Task ListenAsync(ControlChannel channel, IServiceProvider services, ILogger logger, int index)
    {
        var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
        var registry = services.GetRequiredService<ConnectionRegistry>();
        var closer = services.GetRequiredService<ConnectionCloser>();
        try
        {
            while (await channel.ReadAsync() is { } message)
            {
                if (message is { Type: ControlMessage.List, Query: { } query })
                {
                    await channel.SendPageAsync(message.RequestId, registry.List(query));
                    continue;
                }

                var answer = message.Type switch
                {
                    ControlMessage.Get => new ControlMessage(ControlMessage.Connection)
                    {
                        Snapshot = registry.Find(message.Id ?? "")?.Snapshot(Environment.TickCount64),
                    },
                    ControlMessage.Close => new ControlMessage(ControlMessage.Closing)
                    {
                        Found = closer.Close(message.Id ?? "", ConnectionCloser.ReasonOrDefault(message.Reason)),
                    },
                    _ => null,
                };
                if (answer is not null)
                {
                    await channel.SendAsync(answer with { RequestId = message.RequestId });
                }
                else if (message.Type == ControlMessage.Drain)
                {
                    LogDraining(logger, index);
                    lifetime.StopApplication();
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidDataException or System.Text.Json.JsonException)
        {
            // the same as the end of the channel
        }

        if (!lifetime.ApplicationStopping.IsCancellationRequested)
        {
            // No supervisor: nobody can list, close or replace this worker's connections any more.
            LogSupervisorGone(logger, index);
            Environment.Exit(SupervisorGone);
        }
    }

    [LoggerMessage(EventId = 70, Level = LogLevel.Information, Message = "Worker {Index} (pid {Pid}) serving {Listeners} ({Mode})")]
    private static partial void LogServing(ILogger logger, int index, int pid, string listeners, string mode);

    [LoggerMessage(EventId = 71, Level = LogLevel.Information, Message = "Worker {Index} draining")]
    private static partial void LogDraining(ILogger logger, int index);

    [LoggerMessage(EventId = 72, Level = LogLevel.Warning, Message = "Worker {Index}: the supervisor is gone; exiting")]
    private static partial void LogSupervisorGone(ILogger logger, int index);

    [LoggerMessage(EventId = 73, Level = LogLevel.Information, Message = "Worker {Index} stopped")]
    private static partial void LogStopped(ILogger logger, int index);
}
