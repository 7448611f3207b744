using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Models.Native;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Models;

/// <summary>
/// The in-process models as one Kestrel transport: binds every <see cref="ModelEndPoint"/> with the model it
/// names. The blocking models hand their connections to Kestrel's dispatch, which runs the listener's middleware
/// and handler; the reactor models run that same pipeline themselves (<see cref="ConnectionDispatcher"/>), except
/// on a TLS listener, whose Kestrel middleware needs Kestrel's dispatch.
/// </summary>
public sealed partial class ModelTransportFactory(GatewayOptions options, GatewayListeners listeners, GatewayMetrics metrics, AcceptStopper stopper,
    ILogger<ModelTransportFactory> logger)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    public static readonly IReadOnlyList<string> Reactors = ["epoll", "epoll-et", "poll", "select"];

    /// <summary>Not a model of its own: a per-connection worker's one passed connection.</summary>
    public const string SingleConnection = "single-connection";

    /// <summary>
    /// One reactor thread per two cores, at least one: with handlers on the thread pool (Gateway:Execution=pool),
    /// two reactor threads on 2 cores served request/response traffic at 0.8× Kestrel's sockets and one at 1.1×
    /// (bench/models), since the pool needs the other core. With inline execution the pool has little to do, and
    /// one thread per core may serve better: Gateway:Models:ReactorThreads sets it outright.
    /// </summary>
    public static int DefaultReactorThreads => Math.Max(1, Environment.ProcessorCount / 2);

    private readonly LogThrottle _refusals = new(TimeSpan.FromSeconds(10));
    private readonly Lock _threadsGate = new();
    private ThreadBudget? _threads;

    public bool CanBind(EndPoint endpoint) => endpoint is ModelEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (endpoint is not ModelEndPoint model)
        {
            throw new NotSupportedException($"{endpoint} is not an in-process model endpoint");
        }

        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException($"the {model.Model} model runs on Linux only; use kestrel");
        }

        var stats = listeners.Stats.First(s => s.Endpoint.Key == model.ListenerKey);
        var reactor = new ReactorOptions
        {
            InputPauseBytes = InputPauseBytes,
            Inline = Inline,
            OnRefused = (remote, refusal, detail) => Refused(stats, remote, refusal, detail),
            OnAcceptFailed = e => LogAcceptFailed(logger, model.ListenerKey, e.Message),
            OnFault = e => LogFault(logger, model.ListenerKey, e),
        };
        var threads = options.Models.ReactorThreads > 0 ? options.Models.ReactorThreads : DefaultReactorThreads;
        IConnectionListener listener = model.Model switch
        {
            "epoll" => new ReactorListener(model, threads, () => new EpollReadiness(edgeTriggered: false), reactor, Dispatcher(model)),
            "epoll-et" => new ReactorListener(model, threads, () => new EpollReadiness(edgeTriggered: true), reactor, Dispatcher(model)),
            "poll" => new ReactorListener(model, threads, () => new PollReadiness(), reactor, Dispatcher(model)),
            "select" => new ReactorListener(model, threads, () => new SelectReadiness(), reactor, Dispatcher(model)),
            "threads" => new BlockingListener(model, oneAtATime: false, BlockingInput, OutputPipe, Threads(), reactor.OnAcceptFailed, reactor.OnRefused),
            "iterative" => new BlockingListener(model, oneAtATime: true, BlockingInput, OutputPipe, Threads(), reactor.OnAcceptFailed, reactor.OnRefused),
            SingleConnection => new SingleConnectionListener(model, BlockingInput, OutputPipe, reactor.OnRefused),
            _ => throw new NotSupportedException($"model {model.Model} is not an in-process transport"),
        };
        stopper.Track(listener);
        return ValueTask.FromResult(listener);
    }

    /// <summary>
    /// The reactors run the listener's pipeline themselves, the one Kestrel was given for this endpoint, when it
    /// may run outside Kestrel's dispatch; null when not (Kestrel's TLS middleware), and Kestrel dispatches.
    /// </summary>
    private ConnectionDispatcher? Dispatcher(ModelEndPoint model) =>
        model.Connections?.Build() is { } pipeline
            ? new ConnectionDispatcher(pipeline, Inline, (connection, e) => LogUnhandled(logger, model.ListenerKey, connection, e))
            : null;

    /// <summary>Whether a reactor connection's handler resumes on the reactor thread that read its bytes.</summary>
    private bool Inline => options.Execution == ExecutionMode.Inline;

    /// <summary>
    /// The input pauses the socket at this many unread bytes: a whole largest frame plus its header must fit, or
    /// a frame of exactly MaxFrameBytes could never complete (as for Kestrel's sockets); it resumes at half.
    /// </summary>
    private long InputPauseBytes => Math.Max(1024 * 1024, options.Limits.MaxFrameBytes + 64 * 1024);

    /// <summary>
    /// The blocking models' input pipe. Their handlers stay on the thread pool in either execution mode: their
    /// design is a receive thread and a send thread per connection with the handler between them on the pool, as
    /// measured in the comparison.
    /// </summary>
    private PipeOptions BlockingInput => new(MemoryPool<byte>.Shared, readerScheduler: PipeScheduler.ThreadPool, writerScheduler: PipeScheduler.Inline,
        pauseWriterThreshold: InputPauseBytes, resumeWriterThreshold: InputPauseBytes / 2, useSynchronizationContext: false);

    /// <summary>
    /// The blocking models' output: their send thread waits on its reader; a writer held up by a slow client
    /// resumes on the thread pool. 64 KiB pending, as Kestrel's default (the reactors' <see cref="SocketOutput"/>
    /// pauses at the same).
    /// </summary>
    private static readonly PipeOptions OutputPipe = new(MemoryPool<byte>.Shared, readerScheduler: PipeScheduler.Inline,
        writerScheduler: PipeScheduler.ThreadPool, pauseWriterThreshold: SocketOutput.PauseBytes, resumeWriterThreshold: SocketOutput.ResumeBytes, useSynchronizationContext: false);

    /// <summary>
    /// The one thread budget of this process's blocking listeners, made when the first binds (the runtime's own
    /// threads are running by then, so the PID limits' room is read after them). Logged when something limits it.
    /// </summary>
    private ThreadBudget Threads()
    {
        lock (_threadsGate)
        {
            if (_threads is null)
            {
                _threads = ThreadBudget.From(options.Models.MaxThreads, out var source);
                if (source is not null)
                {
                    LogThreadBudget(logger, _threads.Max, _threads.Max / ThreadConnection.ThreadsPerConnection, source);
                }
            }

            return _threads;
        }
    }

    /// <summary>The <c>reason</c> tag of a refusal in <c>gateway.connections.rejected</c>.</summary>
    private static string MetricReason(ModelRefusal refusal) => refusal switch
    {
        ModelRefusal.DescriptorPastSelectLimit => "model_limit",
        ModelRefusal.MaxThreads => "max_threads",
        ModelRefusal.NoThread => "no_thread",
        _ => throw new ArgumentOutOfRangeException(nameof(refusal), refusal, null),
    };

    private void Refused(ListenerStats stats, IPEndPoint? remote, ModelRefusal refusal, string reason)
    {
        stats.RejectedOne();
        metrics.Rejected(stats, MetricReason(refusal));
        if (_refusals.TryTake(out var count))
        {
            LogRefused(logger, count, stats.Endpoint.Key, stats.Model, remote?.ToString(), reason);
        }
    }

    [LoggerMessage(EventId = 30, Level = LogLevel.Warning, Message = "Refused {Count} connection(s) on {Listener} (model {Model}; latest from {Remote}): {Reason}")]
    private static partial void LogRefused(ILogger logger, long count, string listener, string model, string? remote, string reason);

    [LoggerMessage(EventId = 33, Level = LogLevel.Information,
        Message = "The threads and iterative models start at most {Threads} connection threads, {Connections} connections ({Source}); past that a connection is refused")]
    private static partial void LogThreadBudget(ILogger logger, int threads, int connections, string source);

    [LoggerMessage(EventId = 32, Level = LogLevel.Error, Message = "{Listener}: a reactor step failed; that connection was closed")]
    private static partial void LogFault(ILogger logger, string listener, Exception exception);

    [LoggerMessage(EventId = 34, Level = LogLevel.Error, Message = "{Listener}: connection {ConnectionId} ended with an unhandled exception")]
    private static partial void LogUnhandled(ILogger logger, string listener, string connectionId, Exception exception);

    [LoggerMessage(EventId = 31, Level = LogLevel.Warning, Message = "{Listener}: accept failed ({Error}); retrying in 100 ms")]
    private static partial void LogAcceptFailed(ILogger logger, string listener, string error);
}
