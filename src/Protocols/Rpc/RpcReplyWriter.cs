using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text.Encodings.Web;
using System.Text.Json;
using Gateway.Protocols.Framing;

namespace Gateway.Protocols.Rpc;

/// <summary>
/// Writes reply frames for one connection into its output pipe without flushing; the handler flushes once
/// per batch. The JSON writer and its buffer are reused for every reply on the connection.
/// </summary>
internal sealed class RpcReplyWriter : IDisposable
{
    private static readonly JsonEncodedText OutName = JsonEncodedText.Encode("out");
    private static readonly JsonEncodedText ResultName = JsonEncodedText.Encode("result");
    private static readonly JsonEncodedText IdName = JsonEncodedText.Encode("id");
    private static readonly JsonEncodedText CodeName = JsonEncodedText.Encode("code");
    private static readonly JsonEncodedText MessageName = JsonEncodedText.Encode("message");

    // Relaxed escaping: replies are read by programs, never embedded in HTML, so UTF-8 text goes out as is.
    internal static readonly JsonWriterOptions WriterOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private readonly PipeWriter _output;

    // Made with the first reply that needs the JSON writer: ping and echo are written without it, and a connection
    // that has not asked anything else (an idle one) holds neither (about 450 bytes).
    private ArrayBufferWriter<byte>? _body;
    private Utf8JsonWriter? _json;
    private bool _unflushed;

    public RpcReplyWriter(PipeWriter output) => _output = output;

    // The fixed parts of a reply whose result is raw JSON from the request (WriteRawResult).
    private static ReadOnlySpan<byte> OutPart => "{\"out\":\""u8;
    private static ReadOnlySpan<byte> ResultPart => "\",\"result\":"u8;
    private static ReadOnlySpan<byte> IdPart => ",\"id\":"u8;
    private static ReadOnlySpan<byte> NullPart => "null"u8;

    /// <summary>
    /// Writes <c>{"out": word, "result": params, "id": id}</c> whose result is the request's own params (null when
    /// it has none), put together from fixed bytes and the request's raw slices: the bytes the JSON writer would
    /// write, without it (<c>ping</c> and <c>echo</c>, the requests that must cost least).
    /// </summary>
    public void WriteRawResult(JsonEncodedText outWord, in RpcRequest request)
    {
        var word = outWord.EncodedUtf8Bytes;
        var length = OutPart.Length + word.Length + ResultPart.Length + (request.HasParams ? request.Params.Length : NullPart.Length)
            + (request.HasId ? IdPart.Length + request.Id.Length : 0) + 1;
        BinaryPrimitives.WriteUInt32LittleEndian(_output.GetSpan(LengthPrefixedFrameReader.HeaderLength), checked((uint)length));
        _output.Advance(LengthPrefixedFrameReader.HeaderLength);
        _output.Write(OutPart);
        _output.Write(word);
        _output.Write(ResultPart);
        if (request.HasParams)
        {
            Write(request.Params);
        }
        else
        {
            _output.Write(NullPart);
        }

        if (request.HasId)
        {
            _output.Write(IdPart);
            Write(request.Id);
        }

        _output.Write("}"u8);
        _unflushed = true;
    }

    private void Write(in ReadOnlySequence<byte> raw)
    {
        foreach (var segment in raw)
        {
            _output.Write(segment.Span);
        }
    }

    /// <summary>Starts <c>{"out": word, "result":</c>; the caller writes exactly one value, then calls <see cref="EndReply"/>.</summary>
    public Utf8JsonWriter BeginReply(JsonEncodedText outWord)
    {
        var json = _json ??= new Utf8JsonWriter(_body = new ArrayBufferWriter<byte>(256), WriterOptions);
        json.WriteStartObject();
        json.WriteString(OutName, outWord);
        json.WritePropertyName(ResultName);
        return json;
    }

    /// <summary>Ends the reply <see cref="BeginReply"/> started.</summary>
    public void EndReply(in RpcRequest request)
    {
        var json = _json ?? throw new InvalidOperationException("no reply was begun");
        if (request.HasId)
        {
            json.WritePropertyName(IdName);
            json.WriteRawValue(request.Id, skipInputValidation: true);
        }

        json.WriteEndObject();
        json.Flush();
        LengthPrefixedFrameWriter.WriteFrame(_body!.WrittenSpan, _output);
        _body.ResetWrittenCount();
        json.Reset();
        _unflushed = true;
    }

    public void WriteError(in RpcRequest request, string code, string message)
    {
        var json = BeginReply(RpcMethodTable.ErrorWord);
        json.WriteStartObject();
        json.WriteString(CodeName, code);
        json.WriteString(MessageName, message);
        json.WriteEndObject();
        EndReply(request);
    }

    /// <summary>Drops a reply begun but not ended (its method failed); the replies before it are untouched.</summary>
    public void DiscardReply()
    {
        _json?.Reset();
        _body?.ResetWrittenCount();
    }

    /// <summary>Sends what was written since the last flush; nothing to send costs nothing.</summary>
    public ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken)
    {
        if (!_unflushed)
        {
            return ValueTask.FromResult(default(FlushResult));
        }

        _unflushed = false;
        return _output.FlushAsync(cancellationToken);
    }

    public void Dispose() => _json?.Dispose();
}
