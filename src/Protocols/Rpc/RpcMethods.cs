using System.Buffers;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Protocols.Rpc;

/// <summary>Which method a request named and how it ended: <see cref="ProtocolOutcomes.Ok"/> or an error code.</summary>
internal readonly record struct RpcOutcome(RpcMethod Method, string Outcome);

/// <summary>
/// What each method does. Parsing the request is done once, then dispatch is a switch on the method
/// (Garnet's habit). Only <c>sleep</c>, a heavy <c>work</c> and a large <c>sha256</c> complete asynchronously (the
/// last two on the thread pool, off the I/O thread that read them); every other method
/// writes its reply straight into the connection's reply buffer.
/// </summary>
/// <remarks>
/// The long methods follow the connection's life (<see cref="ConnectionContext.ConnectionClosed"/>: the client
/// closed or reset, or the host aborted it after a close request's grace): a <c>sleep</c> ends, a heavy
/// <c>work</c> stops at its next slice or leaves the CPU queue, with <see cref="OperationCanceledException"/>.
/// </remarks>
internal static class RpcMethods
{
    public const long MaxSleepMilliseconds = 10_000;
    public const long MaxWorkRounds = 10_000_000;

    /// <summary>
    /// <c>work</c> runs in slices of this many rounds (a few milliseconds) and looks at its connection between
    /// them. A request of one slice or less runs at once, on the thread that read it (an I/O thread: about a
    /// millisecond at most, as a slow command holds Redis's one thread); a longer one is heavy: it waits its turn
    /// for one of the <see cref="CpuSlots"/>, leaves the I/O thread and stops when its client leaves.
    /// </summary>
    public const long WorkSliceRounds = 4096;

    /// <summary>
    /// A <c>sha256</c> of more than this many bytes of params (tens of microseconds and up) leaves the I/O thread
    /// first; a smaller one costs less than the hop would.
    /// </summary>
    public const int Sha256InlineBytes = 64 * 1024;

    /// <summary>Answers one request frame; completes synchronously for every method but <c>sleep</c>, a heavy <c>work</c> and a large <c>sha256</c>.</summary>
    public static ValueTask<RpcOutcome> InvokeAsync(in ReadOnlySequence<byte> body, RpcReplyWriter replies, ConnectionContext connection, CpuSlots cpu)
    {
        if (!RpcRequestParser.TryParse(body, out var request, out var error))
        {
            replies.WriteError(request, error.Code, error.Message);
            return new(new RpcOutcome(request.Method, error.Code));
        }

        string? problem;
        switch (request.Method)
        {
            case RpcMethod.Ping:
            case RpcMethod.Echo:
                replies.WriteRawResult(RpcMethodTable.OutWord(request.Method), request);
                return Ok(request.Method);

            case RpcMethod.Time:
                var now = DateTime.UtcNow;
                JsonSerializer.Serialize(
                    replies.BeginReply(RpcMethodTable.OutWord(RpcMethod.Time)),
                    new TimeResult(now, new DateTimeOffset(now).ToUnixTimeMilliseconds()),
                    RpcJsonContext.Default.TimeResult);
                replies.EndReply(request);
                return Ok(RpcMethod.Time);

            case RpcMethod.Sum:
                problem = Sum(request, replies);
                break;

            case RpcMethod.Sha256:
                if (request.Params.Length > Sha256InlineBytes)
                {
                    return LargeSha256Async(request, replies);
                }

                problem = Sha256(request, replies);
                break;

            case RpcMethod.Work:
                problem = TryReadBounded(request, RpcJsonContext.Default.WorkParams, static p => p.Rounds, MaxWorkRounds, "rounds", out var rounds);
                if (problem is null)
                {
                    if (rounds > WorkSliceRounds)
                    {
                        return HeavyWorkAsync(request, rounds, replies, cpu, connection.ConnectionClosed);
                    }

                    WriteWork(request, rounds, Work(rounds, CancellationToken.None), replies);
                }

                break;

            case RpcMethod.Sleep:
                problem = TryReadBounded(request, RpcJsonContext.Default.SleepParams, static p => p.Ms, MaxSleepMilliseconds, "ms", out var ms);
                if (problem is null)
                {
                    return SleepAsync(request, ms, replies, connection.ConnectionClosed);
                }

                break;

            case RpcMethod.WhoAmI:
                var model = connection.Features.Get<IServerModelFeature>();
                JsonSerializer.Serialize(
                    replies.BeginReply(RpcMethodTable.OutWord(RpcMethod.WhoAmI)),
                    new WhoAmIResult(Environment.ProcessId, model?.Model ?? "unknown", model?.Worker, connection.ConnectionId),
                    RpcJsonContext.Default.WhoAmIResult);
                replies.EndReply(request);
                return Ok(RpcMethod.WhoAmI);

            default:
                replies.WriteError(request, RpcErrorCodes.UnknownMethod,
                    $"no method \"{request.UnknownName}\"; methods: {string.Join(", ", RpcMethodTable.MethodNames)}");
                return new(new RpcOutcome(RpcMethod.Unknown, RpcErrorCodes.UnknownMethod));
        }

        if (problem is not null)
        {
            replies.WriteError(request, RpcErrorCodes.BadParams, problem);
            return new(new RpcOutcome(request.Method, RpcErrorCodes.BadParams));
        }

        return Ok(request.Method);
    }

    private static ValueTask<RpcOutcome> Ok(RpcMethod method) => new(new RpcOutcome(method, ProtocolOutcomes.Ok));

    /// <summary>params: an array of numbers. Integers add exactly while they fit in 64 bits, as in Python.</summary>
    private static string? Sum(in RpcRequest request, RpcReplyWriter replies)
    {
        var json = new Utf8JsonReader(request.Params);
        if (!request.HasParams || !json.Read() || json.TokenType != JsonTokenType.StartArray)
        {
            return "params must be an array of numbers, e.g. [1, 2.5]";
        }

        long integerTotal = 0;
        double total = 0;
        var allIntegers = true;
        while (json.Read() && json.TokenType != JsonTokenType.EndArray)
        {
            if (json.TokenType != JsonTokenType.Number)
            {
                return "params must be an array of numbers, e.g. [1, 2.5]";
            }

            if (allIntegers && json.TryGetInt64(out var integer))
            {
                try
                {
                    integerTotal = checked(integerTotal + integer);
                    continue;
                }
                catch (OverflowException)
                {
                    // Fall through to floating point from here on.
                }
            }

            if (allIntegers)
            {
                allIntegers = false;
                total = integerTotal;
            }

            total += json.GetDouble();
        }

        if (!allIntegers && !double.IsFinite(total))
        {
            return "the sum is not a finite number";
        }

        var writer = replies.BeginReply(RpcMethodTable.OutWord(RpcMethod.Sum));
        if (allIntegers)
        {
            writer.WriteNumberValue(integerTotal);
        }
        else
        {
            writer.WriteNumberValue(total);
        }

        replies.EndReply(request);
        return null;
    }

    /// <summary>params: a string; the result is the lowercase hex SHA-256 of its UTF-8 bytes.</summary>
    private static string? Sha256(in RpcRequest request, RpcReplyWriter replies)
    {
        var json = new Utf8JsonReader(request.Params);
        if (!request.HasParams || !json.Read() || json.TokenType != JsonTokenType.String)
        {
            return "params must be a string";
        }

        var maximum = json.HasValueSequence ? checked((int)json.ValueSequence.Length) : json.ValueSpan.Length;
        var rented = ArrayPool<byte>.Shared.Rent(Math.Max(maximum, 1));
        try
        {
            int length;
            try
            {
                length = json.CopyString(rented);
            }
            catch (InvalidOperationException)
            {
                // Valid JSON, but an escape that is no text: a lone surrogate such as "\ud83d" (found by bench/fuzz).
                return "params must be a string of text (it holds an unpaired surrogate escape)";
            }

            Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
            SHA256.HashData(rented.AsSpan(0, length), hash);
            Span<char> hex = stackalloc char[SHA256.HashSizeInBytes * 2];
            Convert.TryToHexStringLower(hash, hex, out _);
            replies.BeginReply(RpcMethodTable.OutWord(RpcMethod.Sha256)).WriteStringValue(hex);
            replies.EndReply(request);
            return null;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// The CPU-bound method for comparing models: <paramref name="rounds"/> chained SHA-256 hashes starting
    /// from 32 zero bytes. Deterministic, so a client can check the answer. Throws
    /// <see cref="OperationCanceledException"/> between slices once <paramref name="stop"/> fires.
    /// </summary>
    internal static string Work(long rounds, CancellationToken stop)
    {
        Span<byte> buffers = stackalloc byte[SHA256.HashSizeInBytes * 2];
        buffers.Clear();
        var current = buffers[..SHA256.HashSizeInBytes];
        var next = buffers[SHA256.HashSizeInBytes..];
        for (long done = 0; done < rounds; done += WorkSliceRounds)
        {
            stop.ThrowIfCancellationRequested();
            var slice = Math.Min(WorkSliceRounds, rounds - done);
            for (long i = 0; i < slice; i++)
            {
                SHA256.HashData(current, next);
                var swap = current;
                current = next;
                next = swap;
            }
        }

        return Convert.ToHexStringLower(current);
    }

    /// <summary>
    /// A <c>work</c> past one slice: it waits for a CPU slot in turn, then computes, and both stop when the
    /// connection ends — a client that sent it and left costs a few milliseconds, not seconds of a core.
    /// </summary>
    private static async ValueTask<RpcOutcome> HeavyWorkAsync(RpcRequest request, long rounds, RpcReplyWriter replies, CpuSlots cpu, CancellationToken connectionClosed)
    {
        var digest = await cpu.RunAsync(static (rounds, stop) => Work(rounds, stop), rounds, connectionClosed);
        WriteWork(request, rounds, digest, replies);
        return new RpcOutcome(RpcMethod.Work, ProtocolOutcomes.Ok);
    }

    private static async ValueTask<RpcOutcome> LargeSha256Async(RpcRequest request, RpcReplyWriter replies)
    {
        await IoThread.LeaveAsync();
        var problem = Sha256(request, replies);
        if (problem is not null)
        {
            replies.WriteError(request, RpcErrorCodes.BadParams, problem);
            return new RpcOutcome(RpcMethod.Sha256, RpcErrorCodes.BadParams);
        }

        return new RpcOutcome(RpcMethod.Sha256, ProtocolOutcomes.Ok);
    }

    private static void WriteWork(in RpcRequest request, long rounds, string digest, RpcReplyWriter replies)
    {
        JsonSerializer.Serialize(
            replies.BeginReply(RpcMethodTable.OutWord(RpcMethod.Work)),
            new WorkResult(rounds, digest),
            RpcJsonContext.Default.WorkResult);
        replies.EndReply(request);
    }

    private static async ValueTask<RpcOutcome> SleepAsync(RpcRequest request, long milliseconds, RpcReplyWriter replies, CancellationToken connectionClosed)
    {
        // Replies already written in this batch must not wait behind the sleep.
        await replies.FlushAsync(connectionClosed);
        await Task.Delay(TimeSpan.FromMilliseconds(milliseconds), connectionClosed);
        replies.BeginReply(RpcMethodTable.OutWord(RpcMethod.Sleep)).WriteNumberValue(milliseconds);
        replies.EndReply(request);
        return new RpcOutcome(RpcMethod.Sleep, ProtocolOutcomes.Ok);
    }

    /// <summary>params: a whole number, or an object holding it, e.g. <c>100</c> or <c>{"ms": 100}</c>.</summary>
    private static string? TryReadBounded<T>(in RpcRequest request, JsonTypeInfo<T> objectForm, Func<T, long> select, long maximum, string name, out long value)
    {
        value = 0;
        if (!request.HasParams)
        {
            return Hint(maximum, name);
        }

        var json = new Utf8JsonReader(request.Params);
        json.Read();
        try
        {
            if (json.TokenType == JsonTokenType.Number && json.TryGetInt64(out var number))
            {
                value = number;
            }
            else if (json.TokenType == JsonTokenType.StartObject && JsonSerializer.Deserialize(ref json, objectForm) is { } parsed)
            {
                value = select(parsed);
            }
            else
            {
                return Hint(maximum, name);
            }
        }
        catch (JsonException)
        {
            return Hint(maximum, name);
        }

        return value < 0 || value > maximum ? Hint(maximum, name) : null;

        static string Hint(long maximum, string name) => $"params must be a whole number 0..{maximum} or {{\"{name}\": n}}";
    }
}
