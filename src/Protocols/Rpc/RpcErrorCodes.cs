namespace Gateway.Protocols.Rpc;

/// <summary>The <c>code</c> of an error reply: <c>{"out":"error","result":{"code":..., "message":...}}</c>.</summary>
public static class RpcErrorCodes
{
    /// <summary>The frame's body is not valid JSON (or not UTF-8). The connection stays usable.</summary>
    public const string BadJson = "bad_json";

    /// <summary>Valid JSON, but not a request object with a string <c>"in"</c>. The connection stays usable.</summary>
    public const string BadRequest = "bad_request";

    /// <summary>No such method. The connection stays usable.</summary>
    public const string UnknownMethod = "unknown_method";

    /// <summary>The method exists; its params do not fit it. The connection stays usable.</summary>
    public const string BadParams = "bad_params";

    /// <summary>The frame is over <c>MaxFrameBytes</c>; framing is lost, so the connection is closed after this reply.</summary>
    public const string TooLarge = "too_large";

    /// <summary>The method failed on the server (a fault in its code, logged there). The connection stays usable.</summary>
    public const string InternalError = "internal_error";

    /// <summary>A frame in progress arrives below the minimum data rate (<c>Limits:MinDataRate</c>); the connection is closed after this reply.</summary>
    public const string TooSlow = "too_slow";
}
