using System.Buffers;
using System.IO.Pipelines;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Protocols.Framing;

namespace Gateway.Protocols.Rpc;

/// <summary>A reply as the client sees it.</summary>
public sealed record RpcResponse(string Out, JsonElement Result, JsonElement? Id)
{
    public bool IsError => Out == "error";

    public string? ErrorCode => IsError && Result.ValueKind == JsonValueKind.Object && Result.TryGetProperty("code", out var code)
        ? code.GetString()
        : null;
}

/// <summary>
/// A client for the RPC protocol over any duplex pipe (a socket's, or an in-memory pair in tests).
/// <see cref="Send"/> only buffers, so callers pipeline by sending many requests before one flush.
/// </summary>
public sealed class RpcClient : IDisposable
{
    private readonly ProtocolReader _frames;
    private readonly PipeWriter _output;
    private readonly ArrayBufferWriter<byte> _body = new(256);
    private readonly Utf8JsonWriter _json;

    public RpcClient(IDuplexPipe transport, int maximumFrameBytes = 64 * 1024 * 1024)
    {
        ArgumentNullException.ThrowIfNull(transport);
        _frames = new ProtocolReader(transport.Input, maximumFrameBytes);
        _output = transport.Output;
        _json = new Utf8JsonWriter(_body, RpcReplyWriter.WriterOptions);
    }

    /// <summary>Buffers one request frame; <paramref name="id"/> is omitted when null.</summary>
    public void Send(string method, JsonNode? parameters = null, JsonNode? id = null)
    {
        _json.WriteStartObject();
        _json.WriteString("in", method);
        _json.WritePropertyName("params");
        if (parameters is null)
        {
            _json.WriteNullValue();
        }
        else
        {
            parameters.WriteTo(_json);
        }

        if (id is not null)
        {
            _json.WritePropertyName("id");
            id.WriteTo(_json);
        }

        _json.WriteEndObject();
        _json.Flush();
        SendRaw(_body.WrittenSpan);
        _body.ResetWrittenCount();
        _json.Reset();
    }

    /// <summary>Buffers one frame whose body is exactly <paramref name="body"/>, valid JSON or not.</summary>
    public void SendRaw(ReadOnlySpan<byte> body) => LengthPrefixedFrameWriter.WriteFrame(body, _output);

    public ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => _output.FlushAsync(cancellationToken);

    /// <summary>The next reply, or null when the server closed the connection.</summary>
    public async ValueTask<RpcResponse?> ReceiveAsync(CancellationToken cancellationToken = default)
    {
        var read = await _frames.ReadAsync(LengthPrefixedFrameReader.Instance, cancellationToken);
        switch (read.Status)
        {
            case ProtocolReadStatus.Message:
                try
                {
                    using var document = JsonDocument.Parse(read.Message);
                    var root = document.RootElement;
                    return new RpcResponse(
                        root.GetProperty("out").GetString() ?? "",
                        root.TryGetProperty("result", out var result) ? result.Clone() : default,
                        root.TryGetProperty("id", out var id) ? id.Clone() : null);
                }
                finally
                {
                    _frames.Advance();
                }

            case ProtocolReadStatus.TooLarge:
                throw new InvalidDataException($"reply frame over {_frames.MaximumMessageSize} bytes");
            default:
                return null;
        }
    }

    public async Task<RpcResponse> CallAsync(string method, JsonNode? parameters = null, JsonNode? id = null, CancellationToken cancellationToken = default)
    {
        Send(method, parameters, id);
        await FlushAsync(cancellationToken);
        return await ReceiveAsync(cancellationToken)
            ?? throw new EndOfStreamException($"the server closed the connection before answering \"{method}\"");
    }

    public void Dispose() => _json.Dispose();
}
