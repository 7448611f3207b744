using System.Buffers;
using System.Diagnostics;
using Gateway.Protocols.Framing;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Protocols.Rpc;

/// <summary>
/// Length-prefixed JSON RPC. Requests are answered in order; every complete frame already received is
/// answered before one flush, so a client that pipelines N requests gets N replies in one write — unless the
/// batch takes longer than 10 ms, which then sends what it has every 10 ms (and stops if the client has gone).
/// A fault in a method's own code is that request's <c>internal_error</c>, never the connection's end.
/// A long method (<c>sleep</c>, a heavy <c>work</c>) stops when the connection ends under it — the client closed
/// or reset it, or the host aborted it — and the request is counted as abandoned, not answered.
/// </summary>
/// <param name="cpu">Where heavy requests wait for a core; by default the process's one queue.</param>
public sealed class RpcHandler(ProtocolLimits limits, CpuSlots? cpu = null) : ConnectionHandler
{
    private readonly CpuSlots _cpu = cpu ?? CpuSlots.PerProcess;

    // A batch that runs this long sends the replies it has so far (see the loop).
    private static readonly long BatchFlushTicks = Stopwatch.Frequency / 100; // 10 ms

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var input = connection.Transport.Input;
        var frames = limits.Reader(input, limits.MaxFrameBytes);
        using var replies = new RpcReplyWriter(connection.Transport.Output);
        // Expiry wakes the read or the flush it bounds (no token per connection: see IdleTimeout).
        using var idle = new IdleTimeout(limits.IdleTimeout, input, connection.Transport.Output);
        // Graceful close (shutdown, admin): the request in progress finishes and is answered, then we return.
        var closeRequest = ConnectionLifetime.CloseRequestOf(connection);
        using var wakeOnClose = closeRequest.WakeReads(input);
        var activity = connection.Features.Get<IProtocolActivityFeature>();

        try
        {
            // One clock reading per request: a request's time runs from the end of the one before it in the batch
            // (its frame's parsing included), or from the read that brought the batch.
            var mark = Stopwatch.GetTimestamp();
            var lastFlush = mark;
            while (!closeRequest.IsRequested)
            {
                if (!frames.TryRead(LengthPrefixedFrameReader.Instance, out var read))
                {
                    // The batch is answered: send it, then wait for more. One timer arm per batch covers both.
                    idle.Arm();
                    if ((await replies.FlushAsync(CancellationToken.None)).IsCompleted)
                    {
                        return;
                    }

                    idle.ThrowIfExpired();
                    read = await frames.ReadAsync(LengthPrefixedFrameReader.Instance, CancellationToken.None);
                    idle.ThrowIfExpired();
                    mark = lastFlush = Stopwatch.GetTimestamp();
                }
                else if (mark - lastFlush > BatchFlushTicks)
                {
                    // A long batch (slow methods, a deep pipeline, a backlog) sends what it has every few ms: the
                    // client sees replies early, and a client that has gone is noticed — the send fails — instead
                    // of its whole backlog being computed for nobody. (Not ConnectionClosed: it fires on the client's
                    // FIN, and a client that half-closes after its last request still wants the replies to its quick
                    // requests; only a long method stops on it.)
                    idle.Arm();
                    if ((await replies.FlushAsync(CancellationToken.None)).IsCompleted)
                    {
                        return;
                    }

                    idle.ThrowIfExpired();
                    mark = lastFlush = Stopwatch.GetTimestamp();
                }

                if (read.IsMessage)
                {
                    using var trace = ProtocolTelemetry.ActivitySource.HasListeners() ? ProtocolTelemetry.ActivitySource.StartActivity("rpc.request", ActivityKind.Server) : null;
                    RpcOutcome outcome;
                    try
                    {
                        outcome = await RpcMethods.InvokeAsync(read.Message, replies, connection, _cpu);
                    }
                    catch (OperationCanceledException) when (connection.ConnectionClosed.IsCancellationRequested)
                    {
                        // The connection ended under a long method, which stopped: nobody is left to answer.
                        activity?.Abandoned(RpcMethodTable.MetricName(RpcRequestParser.Identify(read.Message).Method));
                        return;
                    }
                    catch (Exception e) when (!ConnectionLifetime.IsExpectedEnd(e, idle, connection))
                    {
                        outcome = Faulted(e, read.Message, replies, activity);
                    }

                    frames.Advance();
                    var ended = Stopwatch.GetTimestamp();
                    Report(activity, trace, outcome, ended - mark);
                    mark = ended;
                    continue;
                }

                if (read.Status == ProtocolReadStatus.TooLarge)
                {
                    replies.WriteError(default, RpcErrorCodes.TooLarge,
                        $"frame over the limit of {limits.MaxFrameBytes} bytes; closing the connection");
                    Report(activity, null, new RpcOutcome(RpcMethod.Unknown, RpcErrorCodes.TooLarge), 0);
                }
                else if (read.Status == ProtocolReadStatus.TooSlow)
                {
                    replies.WriteError(default, RpcErrorCodes.TooSlow,
                        $"frame arriving slower than {limits.MinDataRate:0} bytes/s ({read.UnparsedBytes} bytes in); closing the connection");
                    Report(activity, null, new RpcOutcome(RpcMethod.Unknown, RpcErrorCodes.TooSlow), 0);
                }

                // Completed (a torn last frame is not an error), Canceled (close requested), TooLarge or TooSlow.
                break;
            }

            idle.Arm();
            await replies.FlushAsync(CancellationToken.None); // a client that stops reading is woken out of it by expiry
        }
        catch (Exception e) when (ConnectionLifetime.IsExpectedEnd(e, idle, connection))
        {
            // The peer left, the host aborted the connection, or it sat idle: returning closes it.
        }
    }

    /// <summary>
    /// A method threw (a bug: bench/fuzz found one in sha256). Its request is answered with <c>internal_error</c>
    /// and its id, the half-written reply dropped, the fault handed to the host (which logs it) and counted; the
    /// connection and the requests pipelined behind this one carry on, as an HTTP server answers 500 and keeps
    /// the connection.
    /// </summary>
    private static RpcOutcome Faulted(Exception fault, in ReadOnlySequence<byte> body, RpcReplyWriter replies, IProtocolActivityFeature? activity)
    {
        replies.DiscardReply();
        var request = RpcRequestParser.Identify(body);
        var method = RpcMethodTable.MetricName(request.Method);
        activity?.Faulted(method, fault);
        replies.WriteError(request, RpcErrorCodes.InternalError,
            $"method \"{method}\" failed on the server (logged there); this request was not completed, the connection is still usable");
        return new RpcOutcome(request.Method, RpcErrorCodes.InternalError);
    }

    private static void Report(IProtocolActivityFeature? activity, Activity? trace, RpcOutcome outcome, long elapsedTicks)
    {
        var method = RpcMethodTable.MetricName(outcome.Method);
        activity?.MessageHandled(method, outcome.Outcome, elapsedTicks / (double)Stopwatch.Frequency);
        if (trace is not null)
        {
            trace.DisplayName = $"rpc {method}";
            trace.SetTag("rpc.system", "gateway");
            trace.SetTag("rpc.method", method);
            if (outcome.Outcome != ProtocolOutcomes.Ok)
            {
                trace.SetStatus(ActivityStatusCode.Error, outcome.Outcome);
            }
        }
    }
}
