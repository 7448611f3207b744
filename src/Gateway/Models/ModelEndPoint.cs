using System.Net;
using System.Net.Sockets;

namespace Gateway.Models;

/// <summary>
/// An address to listen on with one of the in-process models. Kestrel hands each endpoint to the first
/// transport that says it can bind it: <see cref="ModelTransportFactory"/> takes these, Kestrel's socket
/// transport keeps the plain <see cref="IPEndPoint"/>s (the <c>kestrel</c> model).
/// </summary>
public sealed class ModelEndPoint(IPEndPoint address, string model, string listenerKey) : EndPoint
{
    public IPEndPoint Address { get; } = address;

    public string Model { get; } = model;

    /// <summary>The configuration key of the listener it serves (<c>Gateway:Listeners:&lt;name&gt;</c>), for its counters.</summary>
    public string ListenerKey { get; } = listenerKey;

    /// <summary>
    /// A listen socket this process was given (a prefork worker's, passed by the supervisor and shared with
    /// it): accept on it instead of binding <see cref="Address"/>, and never shut it down, which would stop
    /// it for every process that shares it.
    /// </summary>
    public int? InheritedSocket { get; init; }

    /// <summary>
    /// The listener's connection pipeline (middleware and handler), set when Kestrel is told about the endpoint
    /// and the pipeline may run outside Kestrel's dispatch: the reactor models then run it for their connections
    /// themselves (<see cref="ConnectionDispatcher"/>); otherwise they hand their connections to Kestrel.
    /// </summary>
    public Microsoft.AspNetCore.Connections.IConnectionBuilder? Connections { get; set; }

    /// <summary>The <see cref="ModelTransportFactory.SingleConnection"/> transport: its one connection is over.</summary>
    public Action? OnServed { get; init; }

    public override AddressFamily AddressFamily => Address.AddressFamily;

    public override string ToString() => Address.ToString();
}
