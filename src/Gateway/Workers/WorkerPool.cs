using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Reflection;
using System.Security.Cryptography;
using Gateway.Admin;
using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Models.Native;
using Gateway.Telemetry;

namespace Gateway.Workers;

/// <summary>
/// The supervisor side of the prefork tier. It binds the sockets of every listener whose model is
/// <c>prefork</c>, starts <c>Gateway:Workers:Count</c> worker processes (this same executable with the
/// <c>worker</c> argument), passes each its sockets over a Unix-socket control channel, replaces a worker that
/// exits or stops heart-beating (backing off when one keeps crashing), and on shutdown drains them all.
/// </summary>
/// <remarks>
/// Port sharing: the supervisor binds and the workers accept, on descriptors passed with SCM_RIGHTS. Binding
/// here means a port clash is reported once, at start, in the usual words; a worker needs no right to bind;
/// and a socket outlives the worker that serves it, so connections that arrive while a worker is being
/// replaced wait in its backlog for the replacement instead of being reset (nginx's <c>reuseport</c> loses
/// them). In <c>async</c> mode each worker gets its own socket of a <c>SO_REUSEPORT</c> group, so the kernel
/// spreads connections evenly and workers never contend for one accept queue; in <c>sync</c> mode every worker
/// blocks in accept(2) on one shared socket, the classic prefork server: the kernel hands each connection to
/// one idle worker, and when none is idle the client waits in the backlog. In <c>per-connection</c> mode this
/// process accepts and passes each connection to a worker started for it (the fork server).
/// </remarks>
public sealed partial class WorkerPool : IHostedService, IDisposable
{
    /// <summary>A worker that sends nothing for this long is hung: it is killed and replaced.</summary>
    private static readonly TimeSpan HeartbeatTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A worker that has not said it serves this long after its start is stuck. Generous: a .NET process starts
    /// in about half a second alone, but many at once on two cores (per-connection mode) take many seconds.
    /// </summary>
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    /// <summary>A worker that exits sooner than this after its start counts as a crash loop: back off.</summary>
    private static readonly TimeSpan StableAfter = TimeSpan.FromSeconds(10);

    private static readonly TimeSpan MaxBackoff = TimeSpan.FromSeconds(30);

    /// <summary>In sync mode a worker's blocking accept(2) gives up this often, to notice a drain.</summary>
    private static readonly TimeSpan SyncAcceptWake = TimeSpan.FromMilliseconds(250);

    /// <summary>How long the admin API waits for a worker's answer before reporting it as unanswered.</summary>
    private static readonly TimeSpan AnswerTimeout = TimeSpan.FromSeconds(2);

    private long _lastRequestId;

    private readonly GatewayOptions _options;
    private readonly GatewayListeners _listeners;
    private readonly ILogger<WorkerPool> _logger;
    private readonly List<PoolListener> _pool = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _supervisors = [];
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, WorkerSlot> _slots = new();
    private readonly List<Thread> _acceptThreads = [];
    private readonly LogThrottle _notServed = new(TimeSpan.FromSeconds(10));

    /// <summary>per-connection: what exited processes counted, by listener (their active count is 0).</summary>
    private readonly Dictionary<string, ListenerCounts> _retired = [];
    private SemaphoreSlim? _processes;
    private int _lastIndex = -1;
    private int _fixedCount;
    private string _controlPath = "";
    private bool _active;
    private Socket? _controlServer;
    private DirectoryInfo? _controlDirectory;
    private Task _acceptingControl = Task.CompletedTask;
    private Task _watching = Task.CompletedTask;
    private Task? _drained;

    public WorkerPool(GatewayOptions options, GatewayListeners listeners, ILogger<WorkerPool> logger)
    {
        _options = options;
        _listeners = listeners;
        _logger = logger;
        Mode = options.Workers.Mode;
    }

    public string Mode { get; }

    /// <summary>A worker's heartbeat carried metric deltas: the worker's label (as in <see cref="ListenerCounts()"/>) and the deltas.</summary>
    public event Action<string, IReadOnlyList<MetricDelta>>? MetricsReceived;

    /// <summary>
    /// per-connection: a connection was closed unserved because no worker process could be started for it, or
    /// its process died before it took the connection (a PID limit leaves room for neither); the listener's key.
    /// Counted as rejected with reason <see cref="NoProcess"/>.
    /// </summary>
    public event Action<string>? ConnectionNotServed;

    /// <summary>The <c>reason</c> of <c>gateway.connections.rejected</c> for <see cref="ConnectionNotServed"/>.</summary>
    public const string NoProcess = "no_process";

    /// <summary>Whether any listener runs on the pool.</summary>
    public bool IsActive => _active;

    private bool PerConnection => Mode == "per-connection";

    private IEnumerable<WorkerSlot> LiveSlots => _slots.Values.OrderBy(s => s.Index);

    public IReadOnlyList<WorkerInfo> Workers() => [.. LiveSlots.Select(s => s.Snapshot(Mode))];

    /// <summary>
    /// The workers' listener counters for the metrics, with the worker they come from: its index, or for
    /// per-connection mode "per-connection" (one series; an index per process would grow without bound),
    /// which also keeps what the processes that have exited counted, so those counters never go back.
    /// </summary>
    public IEnumerable<(string Worker, ListenerCounts Counts)> ListenerCounts()
    {
        if (!PerConnection)
        {
            return LiveSlots.SelectMany(s => s.Counts.Select(c => (WorkerLabel(s), c)));
        }

        lock (_retired)
        {
            return LiveSlots.SelectMany(s => s.Counts).Concat(_retired.Values)
                .GroupBy(c => c.Key)
                .Select(g => ("per-connection", new ListenerCounts(g.Key, g.Sum(c => c.Active), g.Sum(c => c.Accepted), g.Sum(c => c.BytesIn), g.Sum(c => c.BytesOut))))
                .ToArray();
        }
    }

    /// <summary>The <c>worker</c> tag of a worker's metrics.</summary>
    private string WorkerLabel(WorkerSlot slot) =>
        PerConnection ? "per-connection" : slot.Index.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Restarts of each worker place, for the metrics.</summary>
    public IEnumerable<(int Worker, int Restarts)> Restarts() => LiveSlots.Select(s => (s.Index, s.Restarts));

    /// <summary>Each worker's state, for the metrics (without the /proc reads of <see cref="Workers"/>).</summary>
    public IEnumerable<string> States() => LiveSlots.Select(s => s.State);

    /// <summary>A worker's connection as the admin API names it: the worker's own id is unique in that process only.</summary>
    public static string ConnectionId(int worker, string id) => $"w{worker}-{id}";

    public static bool TryParseConnectionId(string id, out int worker, out string inner)
    {
        worker = -1;
        inner = "";
        var dash = id.IndexOf('-', StringComparison.Ordinal);
        if (!id.StartsWith('w') || dash < 2
            || !int.TryParse(id.AsSpan(1, dash - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out worker))
        {
            return false;
        }

        inner = id[(dash + 1)..];
        return true;
    }

    /// <summary>
    /// The listing across the pool: this process's page merged with each worker's, in the query's order. Each
    /// process returns its first offset+limit matches, so the merged page is exact; a worker that does not
    /// answer in time is named in <see cref="ConnectionPage.UnansweredWorkers"/>.
    /// </summary>
    public async Task<ConnectionPage> ListAsync(ConnectionQuery query, Func<ConnectionQuery, ConnectionPage> local)
    {
        var offset = query.Offset ?? 0;
        var limit = query.Limit ?? ConnectionQuery.DefaultLimit;
        var each = query with { Offset = 0, Limit = (int)Math.Min((long)offset + limit, int.MaxValue) };
        var asked = LiveSlots.Select(slot => (slot.Index, Answer: RequestAsync(slot, new ControlMessage(ControlMessage.List) { Query = each }))).ToArray();
        var pages = new List<ConnectionPage> { local(each) };
        var unanswered = new List<int>();
        foreach (var (index, answer) in asked)
        {
            if (await answer is { Listing: { } page })
            {
                pages.Add(page with { Items = [.. page.Items.Select(c => c with { Id = ConnectionId(index, c.Id), Worker = index })] });
            }
            else
            {
                unanswered.Add(index);
            }
        }

        var merged = pages.SelectMany(p => p.Items).ToList();
        merged.Sort(ConnectionSnapshotOrder.For(query.Sort));
        return new ConnectionPage(pages.Sum(p => p.Total), offset, limit, [.. merged.Skip(offset).Take(limit)]) { UnansweredWorkers = unanswered };
    }

    /// <summary>A worker's connection; Answered false when the worker did not answer in time.</summary>
    public async Task<(bool Answered, ConnectionSnapshot? Connection)> GetAsync(int worker, string id)
    {
        if (!_slots.TryGetValue(worker, out var slot))
        {
            return (true, null);
        }

        var answer = await RequestAsync(slot, new ControlMessage(ControlMessage.Get) { Id = id });
        return (answer is not null, answer?.Snapshot is { } c ? c with { Id = ConnectionId(worker, c.Id), Worker = worker } : null);
    }

    /// <summary>Passes a close request on to the worker that owns the connection.</summary>
    public async Task<(bool Answered, bool Found)> CloseAsync(int worker, string id, string reason)
    {
        if (!_slots.TryGetValue(worker, out var slot))
        {
            return (true, false);
        }

        var answer = await RequestAsync(slot, new ControlMessage(ControlMessage.Close) { Id = id, Reason = reason });
        return (answer is not null, answer?.Found == true);
    }

    /// <summary>Sends a request to a worker and waits for its answer; null when it has none in time (or no channel).</summary>
    private async Task<ControlMessage?> RequestAsync(WorkerSlot slot, ControlMessage request)
    {
        if (slot.Channel is not { } channel)
        {
            return null;
        }

        var id = Interlocked.Increment(ref _lastRequestId);
        var answer = new ControlAnswer();
        slot.Pending[id] = answer;
        try
        {
            using var timeout = new CancellationTokenSource(AnswerTimeout);
            await channel.SendAsync(request with { RequestId = id }, timeout.Token);
            return await answer.Whole.WaitAsync(timeout.Token);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException or InvalidOperationException)
        {
            return null;
        }
        finally
        {
            slot.Pending.TryRemove(id, out _);
        }
    }

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var endpoints = _listeners.PreforkEndpoints;
        if (endpoints.Count == 0)
        {
            return;
        }

        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("the prefork model runs on Linux only; use kestrel");
        }

        _active = true;
        _fixedCount = PerConnection ? 0 : _options.Workers.EffectiveCount;
        foreach (var endpoint in endpoints)
        {
            _pool.Add(Bind(endpoint, _fixedCount));
        }

        _controlDirectory = Directory.CreateTempSubdirectory("gateway-workers-"); // 0700: ours alone
        _controlPath = Path.Combine(_controlDirectory.FullName, "control.sock");
        _controlServer = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _controlServer.Bind(new UnixDomainSocketEndPoint(_controlPath));
        _controlServer.Listen(512);
        _acceptingControl = AcceptControlAsync(_controlServer);
        _watching = WatchHeartbeatsAsync();

        if (PerConnection)
        {
            // The fork server: this process accepts, and each connection gets a fresh worker process.
            var max = _options.Workers.MaxProcesses > 0 ? _options.Workers.MaxProcesses : 64 * Environment.ProcessorCount;
            _processes = new SemaphoreSlim(max, max);
            foreach (var listener in _pool)
            {
                foreach (var socket in listener.SocketsFor(0))
                {
                    var thread = new Thread(() => AcceptConnections(listener, socket)) { IsBackground = true, Name = $"per-connection accept :{listener.Port}" };
                    _acceptThreads.Add(thread);
                    thread.Start();
                }
            }

            return;
        }

        for (var i = 0; i < _fixedCount; i++)
        {
            var slot = new WorkerSlot(Interlocked.Increment(ref _lastIndex));
            _slots[slot.Index] = slot;
            _supervisors.Add(SuperviseAsync(slot, _controlPath));
        }

        // Serve before saying "started": wait for every worker's first ready (a slow one is logged, not fatal).
        var ready = Task.WhenAll(_slots.Values.Select(s => s.Ready.Task));
        if (await Task.WhenAny(ready, Task.Delay(TimeSpan.FromSeconds(60), cancellationToken)) != ready)
        {
            LogSlowStart(_logger, _slots.Values.Count(s => !s.Ready.Task.IsCompleted));
        }
    }

    /// <summary>
    /// per-connection: takes a process slot, then accepts one connection and starts a worker for it. At the
    /// cap no slot is free, so nothing is accepted: clients wait in the backlog, as they would for fork().
    /// </summary>
    private void AcceptConnections(PoolListener listener, FileDescriptor socket)
    {
        while (!_stopping.IsCancellationRequested)
        {
            if (!_processes!.Wait(SyncAcceptWake))
            {
                continue;
            }

            FileDescriptor? connection;
            try
            {
                var result = NativeSocket.Accept(socket, nonBlocking: false, out connection);
                if (connection is null)
                {
                    _processes.Release();
                    if (result.Error is Errno.TooManyFiles or Errno.TooManyFilesSystem or Errno.NoBuffers)
                    {
                        LogAcceptFailed(_logger, listener.Key, result.ToException("accept4").Message);
                        Thread.Sleep(100);
                    }

                    continue; // SO_RCVTIMEO passed (look at the stop flag), EINTR, or a client that left
                }
            }
            catch (ObjectDisposedException)
            {
                _processes.Release();
                return; // stopping
            }

            // The connection inherited the listener's accept timeout; its reads must block.
            _ = Libc.SetTimeout(connection, Libc.SoRcvTimeo, TimeSpan.Zero);
            var slot = new WorkerSlot(Interlocked.Increment(ref _lastIndex)) { Connection = connection, ConnectionListener = listener };
            _slots[slot.Index] = slot;
            _ = RunConnectionWorkerAsync(slot);
        }
    }

    private async Task RunConnectionWorkerAsync(WorkerSlot slot)
    {
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_supervisors)
        {
            _supervisors.Add(finished.Task);
        }

        string? failure = null;
        try
        {
            using var process = Spawn(slot, _controlPath);
            await process.WaitForExitAsync(CancellationToken.None);
            slot.State = WorkerStates.Exited;
            if (process.ExitCode != 0)
            {
                failure = $"its worker (pid {slot.Pid}) exited with code {process.ExitCode}";
                if (slot.Connection is null)
                {
                    LogConnectionWorkerFailed(_logger, slot.Index, slot.Pid, process.ExitCode); // after it took its connection
                }
            }
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException or OutOfMemoryException)
        {
            // fork(2) refused (EAGAIN under a PID limit), or a thread the start needs: this connection alone is lost.
            failure = $"no worker process could be started: {e.Message}";
        }
        finally
        {
            // Never handed over: the client sees its connection close, counted and logged once per burst
            // (unless the pool is stopping, which ends such connections anyway).
            var never = slot.Connection;
            never?.Dispose();
            if (never is not null && !_stopping.IsCancellationRequested)
            {
                var listener = slot.ConnectionListener!.Key;
                ConnectionNotServed?.Invoke(listener);
                if (_notServed.TryTake(out var count))
                {
                    LogConnectionsNotServed(_logger, count, listener, failure ?? "its worker exited before it took the connection");
                }
            }

            slot.Ready.TrySetResult();
            lock (_retired)
            {
                // Together, so a metrics collection never sees the process both live and retired, or neither. A
                // connection never handed over was refused, not accepted (as one over MaxConnections is).
                if (never is null)
                {
                    Retire(slot);
                }

                _slots.TryRemove(slot.Index, out _);
            }

            _processes!.Release();
            finished.TrySetResult();
        }
    }

    /// <summary>Drains every worker (once: the gateway's drain starts it, the host's stop waits for the same).</summary>
    public Task StopAsync(CancellationToken cancellationToken)
    {
        lock (_supervisors)
        {
            return _drained ??= Task.Run(DrainAsync, CancellationToken.None); // not under the lock: the drain takes it itself
        }
    }

    private async Task DrainAsync()
    {
        if (!_active)
        {
            return;
        }

        await _stopping.CancelAsync();
        foreach (var thread in _acceptThreads)
        {
            thread.Join(); // each sees the stop within one accept timeout
        }

        LogDraining(_logger, _slots.Count);
        foreach (var slot in LiveSlots)
        {
            if (slot.Channel is { } channel && slot.State != WorkerStates.Exited)
            {
                slot.State = WorkerStates.Draining;
                try
                {
                    await channel.SendAsync(new ControlMessage(ControlMessage.Drain), CancellationToken.None);
                }
                catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or InvalidOperationException)
                {
                    // It is exiting already.
                }
            }
        }

        // No worker will be started again: let go of the listen sockets, so that once the workers have closed
        // theirs the port refuses new clients instead of queueing them for nobody.
        foreach (var listener in _pool)
        {
            listener.Dispose();
        }

        // Workers drain within the shutdown timeout themselves; this waits a little longer, then kills.
        var deadline = TimeSpan.FromSeconds(_options.Limits.ShutdownTimeoutSeconds + 5);
        Task exited;
        lock (_supervisors)
        {
            exited = Task.WhenAll(_supervisors);
        }

        if (await Task.WhenAny(exited, Task.Delay(deadline, CancellationToken.None)) != exited)
        {
            foreach (var slot in LiveSlots)
            {
                if (slot.Process is { HasExited: false } process)
                {
                    LogKilled(_logger, slot.Index, slot.Pid);
                    process.Kill();
                }
            }

            await exited;
        }

        _controlServer?.Dispose();
        await Task.WhenAll(_acceptingControl, _watching);
        try
        {
            _controlDirectory?.Delete(recursive: true);
        }
        catch (IOException)
        {
            // best effort: a temporary directory
        }
    }

    public void Dispose()
    {
        foreach (var listener in _pool)
        {
            listener.Dispose();
        }

        _controlServer?.Dispose();
        _processes?.Dispose();
        _stopping.Dispose();
    }

    /// <summary>The listener's sockets: one per listen address, and in async mode one set per worker.</summary>
    private PoolListener Bind(ListenerEndpoint endpoint, int workers)
    {
        var reusePort = Mode == "async";
        var sets = reusePort ? workers : 1;
        var port = endpoint.Port;
        var bound = new List<FileDescriptor[]>();
        try
        {
            var addresses = GatewayListeners.AddressesOf(endpoint);
            for (var set = 0; set < sets; set++)
            {
                bound.Add(new FileDescriptor[addresses.Length]);
                for (var i = 0; i < addresses.Length; i++)
                {
                    var socket = NativeSocket.Listen(new IPEndPoint(addresses[i], port), nonBlocking: false, reusePort);
                    bound[^1][i] = socket;
                    if (port == 0)
                    {
                        port = NativeSocket.LocalEndPoint(socket)?.Port ?? 0; // the rest share the port chosen
                    }

                    if (!reusePort)
                    {
                        Libc.SetTimeout(socket, Libc.SoRcvTimeo, SyncAcceptWake).ThrowIfFailed("setsockopt(SO_RCVTIMEO)");
                    }
                }
            }
        }
        catch
        {
            foreach (var socket in bound.SelectMany(s => s))
            {
                socket?.Dispose();
            }

            throw;
        }

        _listeners.SetPreforkPort(endpoint.Key, port);
        return new PoolListener(endpoint.Key, port, bound);
    }

    private async Task SuperviseAsync(WorkerSlot slot, string controlPath)
    {
        var quickExits = 0;
        while (!_stopping.IsCancellationRequested)
        {
            Process process;
            try
            {
                process = Spawn(slot, controlPath);
            }
            catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
            {
                LogSpawnFailed(_logger, slot.Index, e.Message);
                quickExits++;
                if (!await DelayAsync(Backoff(quickExits)))
                {
                    break;
                }

                continue;
            }

            await process.WaitForExitAsync(CancellationToken.None);
            var code = process.ExitCode;
            slot.State = WorkerStates.Exited;
            slot.Connections = 0;
            slot.Ready.TrySetResult();
            process.Dispose();
            if (_stopping.IsCancellationRequested)
            {
                LogWorkerStopped(_logger, slot.Index, slot.Pid, code);
                break;
            }

            var lived = TimeSpan.FromMilliseconds(Environment.TickCount64 - slot.StartedTick);
            quickExits = lived < StableAfter ? quickExits + 1 : 0;
            var delay = Backoff(quickExits);
            slot.Restarts++;
            slot.State = WorkerStates.Restarting;
            LogWorkerExited(_logger, slot.Index, slot.Pid, code, lived.TotalSeconds, delay.TotalSeconds, slot.Restarts);
            if (!await DelayAsync(delay))
            {
                break;
            }
        }
    }

    /// <summary>
    /// Keeps an exited per-connection worker's counts (under the <see cref="_retired"/> lock). Its last heartbeat may predate its last bytes; it
    /// served one connection, so it accepted exactly one.
    /// </summary>
    private void Retire(WorkerSlot slot)
    {
        if (slot.ConnectionListener is not { } listener)
        {
            return;
        }

        var last = slot.Counts.FirstOrDefault(c => c.Key == listener.Key) ?? new ListenerCounts(listener.Key, 0, 0, 0, 0);
        var before = _retired.GetValueOrDefault(listener.Key) ?? new ListenerCounts(listener.Key, 0, 0, 0, 0);
        _retired[listener.Key] = before with { Accepted = before.Accepted + 1, BytesIn = before.BytesIn + last.BytesIn, BytesOut = before.BytesOut + last.BytesOut };
    }

    /// <summary>No wait after a worker that ran a while; 1, 2, 4 ... 30 s after one that keeps dying young.</summary>
    private static TimeSpan Backoff(int quickExits) =>
        quickExits == 0 ? TimeSpan.Zero : TimeSpan.FromSeconds(Math.Min(MaxBackoff.TotalSeconds, Math.Pow(2, quickExits - 1)));

    private async Task<bool> DelayAsync(TimeSpan delay)
    {
        try
        {
            await Task.Delay(delay, _stopping.Token);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private Process Spawn(WorkerSlot slot, string controlPath)
    {
        // This executable again: the apphost itself, or `dotnet Gateway.dll` when started through the muxer.
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("cannot tell this process's executable");
        var start = new ProcessStartInfo(host) { UseShellExecute = false, WorkingDirectory = Environment.CurrentDirectory };
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
        {
            start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
        }

        start.ArgumentList.Add(WorkerHost.Argument);
        foreach (var argument in Environment.GetCommandLineArgs().Skip(1))
        {
            start.ArgumentList.Add(argument); // the same configuration as the supervisor's
        }

        slot.Token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
        start.Environment[WorkerHost.ControlVariable] = controlPath;
        start.Environment[WorkerHost.IndexVariable] = slot.Index.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment[WorkerHost.TokenVariable] = slot.Token;
        if (slot.Connection is not null)
        {
            // One connection per process: the workstation GC without its background thread. Server GC would
            // give each of possibly hundreds of processes a heap and a GC thread per core.
            start.Environment["DOTNET_gcServer"] = "0";
            start.Environment["DOTNET_gcConcurrent"] = "0";
        }

        slot.State = WorkerStates.Starting;
        slot.Channel = null;
        slot.Ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var process = Process.Start(start) ?? throw new InvalidOperationException("the worker did not start");
        slot.Process = process;
        slot.Pid = process.Id;
        slot.StartedAt = DateTimeOffset.UtcNow;
        slot.StartedTick = slot.LastHeartbeatTick = Environment.TickCount64;
        if (slot.Connection is null)
        {
            LogWorkerStarted(_logger, slot.Index, slot.Pid, Mode);
        }
        else
        {
            LogConnectionWorkerStarted(_logger, slot.Index, slot.Pid);
        }
        return process;
    }

    private async Task AcceptControlAsync(Socket server)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await server.AcceptAsync();
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                return; // stopped
            }

            _ = ServeControlAsync(new ControlChannel(socket));
        }
    }

    /// <summary>One worker's channel: the hello, its sockets, then its messages until it closes.</summary>
    private async Task ServeControlAsync(ControlChannel channel)
    {
        WorkerSlot? slot = null;
        try
        {
            using var helloTimeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            var hello = await channel.ReadAsync(helloTimeout.Token);
            slot = hello is { Type: ControlMessage.Hello, Index: { } index } && _slots.TryGetValue(index, out var known) ? known : null;
            if (slot is null || hello!.Token != slot.Token || hello.Pid != slot.Pid || _stopping.IsCancellationRequested)
            {
                LogStrangerOnControl(_logger);
                return;
            }

            var passed = new List<PassedListener>();
            var descriptors = new List<FileDescriptor>();
            if (slot.Connection is { } connection)
            {
                passed.Add(new PassedListener(slot.ConnectionListener!.Key, 1, slot.ConnectionListener.Port) { Connected = true });
                descriptors.Add(connection);
            }
            else
            {
                foreach (var listener in _pool)
                {
                    var sockets = listener.SocketsFor(slot.Index);
                    passed.Add(new PassedListener(listener.Key, sockets.Length, listener.Port));
                    descriptors.AddRange(sockets);
                }
            }

            // A per-connection worker's FTP passive ports: the whole range (each binds a free one).
            SendSockets(channel, new ControlMessage(ControlMessage.Sockets) { Listeners = [.. passed], Workers = Math.Max(1, _fixedCount) }, descriptors);
            if (slot.Connection is not null)
            {
                slot.Connection.Dispose(); // the worker has its own copy now
                slot.Connection = null;
            }

            slot.Channel = channel;
            while (await channel.ReadAsync() is { } message)
            {
                slot.LastHeartbeatTick = Environment.TickCount64;
                if (message.RequestId is { } answered && slot.Pending.TryGetValue(answered, out var waiting))
                {
                    if (waiting.Add(message))
                    {
                        slot.Pending.TryRemove(answered, out _);
                    }

                    continue;
                }

                switch (message.Type)
                {
                    case ControlMessage.Ready:
                        if (slot.State == WorkerStates.Starting)
                        {
                            slot.State = WorkerStates.Ready;
                        }

                        slot.Ready.TrySetResult();
                        break;
                    case ControlMessage.Heartbeat:
                        slot.Connections = message.Connections ?? slot.Connections;
                        slot.Counts = message.Counts ?? slot.Counts;
                        if (message.Metrics is { Length: > 0 } deltas)
                        {
                            MetricsReceived?.Invoke(WorkerLabel(slot), deltas);
                        }

                        break;
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or InvalidDataException or System.Text.Json.JsonException)
        {
            // The worker died or spoke nonsense; its exit is handled by its supervisor task.
        }
        finally
        {
            if (slot is not null && ReferenceEquals(slot.Channel, channel))
            {
                slot.Channel = null;
            }

            await channel.DisposeAsync();
        }
    }

    private static void SendSockets(ControlChannel channel, ControlMessage message, List<FileDescriptor> sockets)
    {
        var added = new bool[sockets.Count];
        try
        {
            var numbers = new int[sockets.Count];
            for (var i = 0; i < sockets.Count; i++)
            {
                sockets[i].DangerousAddRef(ref added[i]);
                numbers[i] = sockets[i].Number;
            }

            ControlChannel.SendWithDescriptors(channel.Socket, message, numbers);
        }
        finally
        {
            for (var i = 0; i < sockets.Count; i++)
            {
                if (added[i])
                {
                    sockets[i].DangerousRelease();
                }
            }
        }
    }

    /// <summary>A worker whose channel stays silent past the heartbeat timeout is hung: kill it (it is then replaced).</summary>
    private async Task WatchHeartbeatsAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(_stopping.Token))
            {
                foreach (var slot in LiveSlots)
                {
                    var silent = TimeSpan.FromMilliseconds(Environment.TickCount64 - slot.LastHeartbeatTick);
                    var limit = slot.State == WorkerStates.Starting ? StartTimeout : HeartbeatTimeout;
                    if (slot.State is WorkerStates.Ready or WorkerStates.Starting && silent > limit
                        && slot.Process is { HasExited: false } process)
                    {
                        LogHung(_logger, slot.Index, slot.Pid, silent.TotalSeconds);
                        process.Kill();
                        slot.LastHeartbeatTick = Environment.TickCount64; // once
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            // stopping
        }
    }

    /// <summary>A prefork listener's sockets: one set for all workers (sync, per-connection) or one per worker (async).</summary>
    internal sealed class PoolListener(string key, int port, List<FileDescriptor[]> sets) : IDisposable
    {
        public string Key { get; } = key;

        public int Port { get; } = port;

        public FileDescriptor[] SocketsFor(int worker) => sets[sets.Count == 1 ? 0 : worker];

        public void Dispose()
        {
            foreach (var socket in sets.SelectMany(s => s))
            {
                socket.Dispose();
            }
        }
    }

    [LoggerMessage(EventId = 60, Level = LogLevel.Information, Message = "Worker {Index} started (pid {Pid}, mode {Mode})")]
    private static partial void LogWorkerStarted(ILogger logger, int index, int pid, string mode);

    [LoggerMessage(EventId = 61, Level = LogLevel.Warning, Message = "Worker {Index} (pid {Pid}) exited with code {Code} after {Seconds:F1} s; restarting in {Delay:F0} s (restart {Restarts})")]
    private static partial void LogWorkerExited(ILogger logger, int index, int pid, int code, double seconds, double delay, int restarts);

    [LoggerMessage(EventId = 62, Level = LogLevel.Information, Message = "Worker {Index} (pid {Pid}) stopped with code {Code}")]
    private static partial void LogWorkerStopped(ILogger logger, int index, int pid, int code);

    [LoggerMessage(EventId = 63, Level = LogLevel.Warning, Message = "Worker {Index} (pid {Pid}) has not been heard from for {Seconds:F0} s; killing it")]
    private static partial void LogHung(ILogger logger, int index, int pid, double seconds);

    [LoggerMessage(EventId = 64, Level = LogLevel.Error, Message = "Worker {Index} could not be started: {Reason}")]
    private static partial void LogSpawnFailed(ILogger logger, int index, string reason);

    [LoggerMessage(EventId = 65, Level = LogLevel.Warning, Message = "A process that is not a current worker connected to the control channel; closed")]
    private static partial void LogStrangerOnControl(ILogger logger);

    [LoggerMessage(EventId = 66, Level = LogLevel.Warning, Message = "{Count} worker(s) not ready after 60 s; serving with the others")]
    private static partial void LogSlowStart(ILogger logger, int count);

    [LoggerMessage(EventId = 67, Level = LogLevel.Information, Message = "Draining {Count} worker(s)")]
    private static partial void LogDraining(ILogger logger, int count);

    [LoggerMessage(EventId = 68, Level = LogLevel.Warning, Message = "Worker {Index} (pid {Pid}) did not finish draining in time; killed")]
    private static partial void LogKilled(ILogger logger, int index, int pid);

    [LoggerMessage(EventId = 58, Level = LogLevel.Debug, Message = "Connection worker {Index} started (pid {Pid})")]
    private static partial void LogConnectionWorkerStarted(ILogger logger, int index, int pid);

    [LoggerMessage(EventId = 69, Level = LogLevel.Warning, Message = "Connection worker {Index} (pid {Pid}) exited with code {Code}")]
    private static partial void LogConnectionWorkerFailed(ILogger logger, int index, int pid, int code);

    [LoggerMessage(EventId = 57, Level = LogLevel.Warning,
        Message = "Closed {Count} connection(s) on {Listener} unserved: no worker process took them (latest: {Reason}); a PID limit such as the cgroup's pids.max? Gateway:Workers:MaxProcesses sets a cap below it")]
    private static partial void LogConnectionsNotServed(ILogger logger, long count, string listener, string reason);

    [LoggerMessage(EventId = 59, Level = LogLevel.Error, Message = "{Listener}: accept failed: {Reason}; retrying")]
    private static partial void LogAcceptFailed(ILogger logger, string listener, string reason);
}
