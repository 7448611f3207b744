using System.IO.Pipelines;

namespace Gateway.Protocols;

/// <summary>
/// A transport's graceful close request (shutdown, admin close) without a cancellation token: it wakes the reader
/// a handler waits on (<see cref="PipeReader.CancelPendingRead"/>) when a close is requested. Optional: without
/// it, <see cref="Framing.ConnectionLifetime"/> registers on <c>IConnectionLifetimeNotificationFeature</c>'s token,
/// which costs an idle connection a token source and a registration (about 190 bytes).
/// </summary>
public interface ICloseRequestWakeFeature
{
    bool IsCloseRequested { get; }

    /// <summary>
    /// From now on, for the rest of the connection, a close request cancels <paramref name="input"/>'s pending read
    /// (at once when one came already). Nothing undoes it: a wake after the handler has returned finds its reader
    /// completed, where a cancel does nothing, so the handler keeps no state for it while it waits.
    /// </summary>
    void WakeOnCloseRequest(PipeReader input);
}
