using System.Buffers;
using System.Text.Json;
using System.Text.Unicode;

namespace Gateway.Protocols.Rpc;

/// <summary>
/// One parsed request: <c>{"in": method, "params": any, "id": any}</c>. Params and id stay raw JSON slices
/// of the frame (valid until the frame is released), so <c>ping</c> answers without building any object.
/// </summary>
internal readonly struct RpcRequest
{
    public RpcMethod Method { get; init; }

    /// <summary>The name as sent, set only when <see cref="Method"/> is <see cref="RpcMethod.Unknown"/>.</summary>
    public string? UnknownName { get; init; }

    public ReadOnlySequence<byte> Params { get; init; }

    public bool HasParams { get; init; }

    public ReadOnlySequence<byte> Id { get; init; }

    public bool HasId { get; init; }
}

/// <summary>Why a frame is not a request: an error code of <see cref="RpcErrorCodes"/> and a message for people.</summary>
internal readonly record struct RpcRequestError(string Code, string Message);

internal static class RpcRequestParser
{
    /// <summary>The request's method and id as far as the frame parses, for an error reply; never throws.</summary>
    public static RpcRequest Identify(in ReadOnlySequence<byte> body)
    {
        try
        {
            _ = TryParse(body, out var request, out _);
            return request;
        }
#pragma warning disable CA1031 // Only called while answering a fault already: a second one must not escape.
        catch (Exception)
#pragma warning restore CA1031
        {
            return default;
        }
    }

    /// <summary>
    /// Parses a frame body. On failure <paramref name="request"/> still carries the id when the JSON was
    /// valid, so the error reply can name the request it answers.
    /// </summary>
    public static bool TryParse(in ReadOnlySequence<byte> body, out RpcRequest request, out RpcRequestError error)
    {
        request = default;
        // Utf8JsonReader checks UTF-8 only in strings it transcodes; ping would echo invalid bytes verbatim.
        if (!IsValidUtf8(body))
        {
            error = new(RpcErrorCodes.BadJson, "the body is not valid UTF-8");
            return false;
        }

        // A frame in one segment (nearly all) is read as a span: the sequence reader's bookkeeping costs more.
        var json = body.IsSingleSegment ? new Utf8JsonReader(body.FirstSpan) : new Utf8JsonReader(body);
        RpcMethod? method = null;
        string? unknownName = null;
        ReadOnlySequence<byte> parameters = default, id = default;
        bool hasParams = false, hasId = false, isObject;
        try
        {
            isObject = json.Read() && json.TokenType == JsonTokenType.StartObject;
            if (isObject)
            {
                while (json.Read() && json.TokenType == JsonTokenType.PropertyName)
                {
                    if (json.ValueTextEquals("in"u8))
                    {
                        json.Read();
                        method = json.TokenType == JsonTokenType.String ? RpcMethodTable.Find(ref json) : RpcMethod.Unknown;
                        unknownName = method == RpcMethod.Unknown && json.TokenType == JsonTokenType.String ? json.GetString() : null;
                        json.Skip();
                    }
                    else if (json.ValueTextEquals("params"u8))
                    {
                        parameters = ReadRawValue(ref json, body);
                        hasParams = true;
                    }
                    else if (json.ValueTextEquals("id"u8))
                    {
                        id = ReadRawValue(ref json, body);
                        hasId = true;
                    }
                    else
                    {
                        json.Read();
                        json.Skip();
                    }
                }
            }
            else
            {
                json.Skip();
            }

            // Read to the end: trailing garbage is a syntax error, so it is bad_json rather than a request.
            while (json.Read())
            {
            }
        }
        catch (JsonException e)
        {
            error = new(RpcErrorCodes.BadJson, $"invalid JSON: {e.Message}");
            return false;
        }
        catch (InvalidOperationException e)
        {
            // Utf8JsonReader reports invalid UTF-8 inside a string this way when it transcodes one.
            error = new(RpcErrorCodes.BadJson, $"invalid JSON text: {e.Message}");
            return false;
        }

        if (!isObject)
        {
            error = new(RpcErrorCodes.BadRequest, "a request is a JSON object: {\"in\": method, \"params\": ..., \"id\": ...}");
            return false;
        }

        request = new RpcRequest
        {
            Method = method ?? RpcMethod.Unknown,
            UnknownName = unknownName,
            Params = parameters,
            HasParams = hasParams,
            Id = id,
            HasId = hasId,
        };

        if (method is null || (method == RpcMethod.Unknown && unknownName is null))
        {
            error = new(RpcErrorCodes.BadRequest, "\"in\" must be a string: the method name");
            return false;
        }

        error = default;
        return true;
    }

    private static bool IsValidUtf8(in ReadOnlySequence<byte> body)
    {
        if (body.IsSingleSegment)
        {
            return Utf8.IsValid(body.FirstSpan);
        }

        // A character may straddle segments, so check one contiguous copy.
        var copy = ArrayPool<byte>.Shared.Rent(checked((int)body.Length));
        try
        {
            body.CopyTo(copy);
            return Utf8.IsValid(copy.AsSpan(0, (int)body.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copy);
        }
    }

    private static ReadOnlySequence<byte> ReadRawValue(ref Utf8JsonReader json, in ReadOnlySequence<byte> body)
    {
        json.Read();
        var start = json.TokenStartIndex;
        json.Skip();
        return body.Slice(start, json.BytesConsumed - start);
    }
}
