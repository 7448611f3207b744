using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using System.Text.Json;
using Gateway.Protocols;
using Gateway.Protocols.Framing;
using Gateway.Protocols.Rpc;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Fuzz;

/// <summary>
/// The RPC path without sockets: the input (after its chunking byte) is what a client sends; the real
/// <see cref="RpcHandler"/> reads it through ProtocolReader and LengthPrefixedFrameReader, parses each body and
/// runs the method, on in-memory pipes whose continuations run inline, so a run is synchronous and repeatable.
/// </summary>
/// <remarks>
/// Fine: the handler returns, and its replies are whole frames, each a JSON object with a string "out" (an
/// error's code one of <see cref="RpcErrorCodes"/>), one per complete request frame in order, plus one
/// too_large reply for a length over the limit, which ends the connection. The client is treated as gone once
/// it has sent everything (Kestrel raises ConnectionClosed on its FIN), so a valid <c>sleep</c> ends the
/// connection instead of waiting: the replies may stop at a request that names sleep.
/// Anything else — an exception out of the handler, a malformed or missing reply — is a finding.
/// </remarks>
internal sealed class FramesTarget : IFuzzTarget
{
    // Small, so that the fuzzer reaches the too_large path; the reader enforces it the same way at any size.
    public const int MaxFrameBytes = 4096;

    private static readonly ProtocolLimits Limits = new() { MaxFrameBytes = MaxFrameBytes, IdleTimeout = TimeSpan.Zero, MinDataRate = 0 };
    // internal_error is left out on purpose: the handler answers a method's exception with it and carries on,
    // so only the reply shows the fault — the fuzzer must report it as a finding.
    private static readonly HashSet<string> ErrorCodes =
    [
        RpcErrorCodes.BadJson, RpcErrorCodes.BadRequest, RpcErrorCodes.UnknownMethod, RpcErrorCodes.BadParams,
        RpcErrorCodes.TooLarge, RpcErrorCodes.TooSlow,
    ];

    // afl-fuzz's dictionary and the random mode's insertions: the request's words and JSON's edge cases.
    private static readonly string[] Tokens =
    [
        "\"in\"", "\"params\"", "\"id\"", "\"ping\"", "\"echo\"", "\"time\"", "\"sum\"", "\"sha256\"", "\"work\"",
        "\"sleep\"", "\"whoami\"", "\"rounds\"", "\"ms\"", "{", "}", "[", "]", ":", ",", "null", "true", "false",
        "\\u0000", "\\ud83d", "\\\"", "1e308", "-0", "9223372036854775807", "18446744073709551616",
    ];

    private static readonly PipeOptions Inline = new(
        readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, pauseWriterThreshold: 0, useSynchronizationContext: false);

    // One handler per endpoint, as Kestrel has it.
    private readonly RpcHandler _handler = new(Limits);

    public string Name => "frames";

    public void Run(byte[] input)
    {
        var toServer = new Pipe(Inline);
        var toClient = new Pipe(Inline);
        using var clientGone = new CancellationTokenSource();
        clientGone.Cancel();
        var connection = new DefaultConnectionContext(
            "fuzz", new DuplexPipe(toServer.Reader, toClient.Writer), new DuplexPipe(toClient.Reader, toServer.Writer))
        {
            ConnectionClosed = clientGone.Token,
        };

        var handler = RunHandlerAsync(connection);
        foreach (var chunk in Chunking.Split(input))
        {
            toServer.Writer.Write(chunk.Span);
            // The flush runs the handler inline; should it fault, the handler task says so below.
            var flushed = toServer.Writer.FlushAsync().AsTask();
            if (!Task.WhenAny(flushed).Wait(TimeSpan.FromSeconds(30)))
            {
                throw new FuzzFinding("a write to the server did not complete in 30 s");
            }
        }

        toServer.Writer.Complete();
        // WhenAny: wait without wrapping the handler's exception, which then surfaces as it was thrown.
        if (!Task.WhenAny(handler).Wait(TimeSpan.FromSeconds(30)))
        {
            throw new FuzzFinding("the handler did not return within 30 s of the client finishing");
        }

        handler.GetAwaiter().GetResult(); // an exception out of the handler is a finding as it is
        if (!toClient.Reader.TryRead(out var replies) || !replies.IsCompleted)
        {
            throw new FuzzFinding("the handler returned without its output being complete");
        }

        Check(Chunking.Data(input), replies.Buffer);
    }

    private async Task RunHandlerAsync(ConnectionContext connection)
    {
        // What Kestrel does around a handler: when it returns, the transport's pipes are completed.
        try
        {
            await _handler.OnConnectedAsync(connection);
        }
        finally
        {
            await connection.Transport.Input.CompleteAsync();
            await connection.Transport.Output.CompleteAsync();
        }
    }

    private static void Check(byte[] sent, ReadOnlySequence<byte> received)
    {
        var requests = Requests(sent, out var tooLarge);
        var replies = new List<JsonElement>();
        while (!received.IsEmpty)
        {
            if (received.Length < 4)
            {
                throw new FuzzFinding($"the output ends in a torn frame header of {received.Length} bytes");
            }

            var length = BinaryPrimitives.ReadUInt32LittleEndian(received.Slice(0, 4).ToArray());
            if (received.Length - 4 < length)
            {
                throw new FuzzFinding($"the output ends in a torn frame: {length} bytes announced, {received.Length - 4} there");
            }

            var body = received.Slice(4, length).ToArray();
            replies.Add(Reply(body));
            received = received.Slice(4 + length);
        }

        var expected = requests.Count + (tooLarge ? 1 : 0);
        if (replies.Count > expected)
        {
            throw new FuzzFinding($"{replies.Count} replies to {requests.Count} complete request frames{(tooLarge ? " and an oversized one" : "")}");
        }

        if (replies.Count < expected && !(replies.Count < requests.Count && NamesSleep(requests[replies.Count])))
        {
            throw new FuzzFinding($"{replies.Count} replies to {requests.Count} complete request frames{(tooLarge ? " and an oversized one" : "")}; "
                + $"request {replies.Count} went unanswered: {Show(replies.Count < requests.Count ? requests[replies.Count] : [])}");
        }

        if (tooLarge && replies.Count == expected && ErrorCode(replies[^1]) != RpcErrorCodes.TooLarge)
        {
            throw new FuzzFinding($"the reply to an oversized frame is not too_large: {replies[^1].GetRawText()}");
        }
    }

    /// <summary>The complete frames as a client-side reader sees them; stops at a length over the limit.</summary>
    private static List<byte[]> Requests(byte[] sent, out bool tooLarge)
    {
        var requests = new List<byte[]>();
        tooLarge = false;
        var offset = 0;
        while (sent.Length - offset >= 4)
        {
            var length = BinaryPrimitives.ReadUInt32LittleEndian(sent.AsSpan(offset));
            if (length > MaxFrameBytes)
            {
                tooLarge = true;
                break;
            }

            if (sent.Length - offset - 4 < length)
            {
                break;
            }

            requests.Add(sent.AsSpan(offset + 4, (int)length).ToArray());
            offset += 4 + (int)length;
        }

        return requests;
    }

    private static JsonElement Reply(byte[] body)
    {
        JsonElement reply;
        try
        {
            using var document = JsonDocument.Parse(body);
            reply = document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new FuzzFinding($"a reply is not JSON ({e.Message}): {Show(body)}");
        }

        if (reply.ValueKind != JsonValueKind.Object || !reply.TryGetProperty("out", out var word) || word.ValueKind != JsonValueKind.String
            || !reply.TryGetProperty("result", out _))
        {
            throw new FuzzFinding($"a reply is not {{\"out\": word, \"result\": ...}}: {Show(body)}");
        }

        if (word.GetString() == "error" && (ErrorCode(reply) is not { } code || !ErrorCodes.Contains(code)))
        {
            throw new FuzzFinding($"an error reply without a known code: {Show(body)}");
        }

        return reply;
    }

    private static string? ErrorCode(JsonElement reply) =>
        reply.TryGetProperty("result", out var result) && result.ValueKind == JsonValueKind.Object
            && result.TryGetProperty("code", out var code) && code.ValueKind == JsonValueKind.String ? code.GetString() : null;

    /// <summary>Whether a request body is a JSON object with an "in" naming sleep (the only method that waits).</summary>
    private static bool NamesSleep(byte[] body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            return document.RootElement.ValueKind == JsonValueKind.Object
                && document.RootElement.EnumerateObject().Any(p => p.NameEquals("in") && p.Value.ValueKind == JsonValueKind.String && p.Value.ValueEquals("sleep"));
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static string Show(byte[] bytes) =>
        bytes.Length <= 200 ? Encoding.UTF8.GetString(bytes) : Encoding.UTF8.GetString(bytes, 0, 200) + $"... ({bytes.Length} bytes)";

    public IEnumerable<byte[]> Seeds()
    {
        byte[] Frames(byte chunk, params string[] bodies)
        {
            var writer = new ArrayBufferWriter<byte>();
            foreach (var body in bodies)
            {
                LengthPrefixedFrameWriter.WriteFrame(Encoding.UTF8.GetBytes(body), writer);
            }

            return Chunking.With(chunk, writer.WrittenSpan);
        }

        yield return Frames(0, """{"in":"ping","params":"hello","id":1}""");
        yield return Frames(1, """{"in":"echo","params":{"a":[1,2.5,null,true]},"id":"x"}""", """{"in":"ping"}""");
        yield return Frames(3, """{"in":"sum","params":[1,2,9223372036854775807,0.5e3],"id":[7]}""");
        yield return Frames(0, """{"in":"sha256","params":"caf\u00e9 \ud83d\ude00","id":null}""");
        yield return Frames(2, """{"in":"work","params":{"rounds":3}}""", """{"in":"work","params":2}""");
        yield return Frames(5, """{"in":"time"}""", """{"in":"whoami","id":{"deep":{"er":[]}}}""");
        yield return Frames(0, """{"in":"nosuch","params":1}""", """[1,2]""", """{"in":7}""", "{\"in\":", "{} {}");
        // A body that is not UTF-8 inside a JSON string.
        yield return Chunking.With(0, [0x0e, 0x00, 0x00, 0x00, .. "{\"in\":\"ping"u8, 0xff, 0xfe, .. "\"}"u8]);
        yield return Frames(0, """{"in":"sleep","params":{"ms":0},"id":3}""", """{"in":"ping","id":4}""");
        // A length over the limit, then a torn frame.
        yield return Chunking.With(0, [0x01, 0x10, 0x00, 0x00, .. "{\"in\":"u8]);
        yield return Chunking.With(4, [0x20, 0x00, 0x00, 0x00, .. "{\"in\":\"ping\""u8]);
    }

    public IEnumerable<byte[]> Dictionary() =>
        Tokens.Select(Encoding.UTF8.GetBytes)
        .Concat([[0x00, 0x10, 0x00, 0x00], [0x01, 0x10, 0x00, 0x00], [0xff, 0xff, 0xff, 0xff], [0x00, 0x00, 0x00, 0x80]]);
}

internal sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;
