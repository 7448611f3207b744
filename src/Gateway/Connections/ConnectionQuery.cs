using System.ComponentModel;
using Gateway.Listeners;
using Microsoft.AspNetCore.Mvc;

namespace Gateway.Connections;

/// <summary>Filters, order and page of a connection listing (the query string of GET /admin/connections).</summary>
public sealed record ConnectionQuery
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    public static readonly IReadOnlyList<string> SortFields =
        ["connectedAt", "lastActivityAt", "age", "idle", "bytesIn", "bytesOut", "messages", "listener", "remote", "protocol", "model", "id"];

    [Description("Only this protocol's listener: echo, rpc, ftp, or ftps (an FTP listener's ImplicitTlsPort).")]
    [FromQuery(Name = "protocol")]
    public string? Protocol { get; init; }

    [Description("Only this I/O model: kestrel, epoll, epoll-et, poll, select, threads, iterative, prefork.")]
    [FromQuery(Name = "model")]
    public string? Model { get; init; }

    [Description("Only remote addresses starting with this, e.g. 10.1. or 127.0.0.1:5123.")]
    [FromQuery(Name = "remote")]
    public string? Remote { get; init; }

    [Description("Only connections idle for at least this many seconds (a finite number, 0 or more).")]
    [FromQuery(Name = "minIdleSeconds")]
    public double? MinIdleSeconds { get; init; }

    [Description("Field to sort by, '-' in front for descending: connectedAt (default), lastActivityAt, age, idle, bytesIn, bytesOut, messages, listener, remote, protocol, model, id.")]
    [FromQuery(Name = "sort")]
    public string? Sort { get; init; }

    [Description("Matches to skip (default 0); past the last match the page is empty.")]
    [FromQuery(Name = "offset")]
    public int? Offset { get; init; }

    [Description("Page size (default 100, at most 1000).")]
    [FromQuery(Name = "limit")]
    public int? Limit { get; init; }

    /// <summary>What is wrong with the query, for a 400 answer; null when it is usable.</summary>
    public string? Problem()
    {
        if (Offset < 0)
        {
            return "offset must be 0 or more";
        }

        if (Limit is < 1 or > MaxLimit)
        {
            return $"limit must be between 1 and {MaxLimit}";
        }

        // NaN passes a `< 0` test, and neither it nor an infinity can be written as JSON for a prefork worker.
        if (MinIdleSeconds is { } idle && !(idle >= 0 && double.IsFinite(idle)))
        {
            return "minIdleSeconds must be a finite number, 0 or more";
        }

        // An unknown name would match nothing: a typo would read as "no such connections".
        if (!string.IsNullOrEmpty(Protocol) && !ListenerEndpoint.ProtocolNames.Contains(Protocol, StringComparer.OrdinalIgnoreCase))
        {
            return $"protocol must be one of {string.Join(", ", ListenerEndpoint.ProtocolNames)}";
        }

        if (!string.IsNullOrEmpty(Model) && !ServerModels.All.Contains(Model, StringComparer.OrdinalIgnoreCase))
        {
            return $"model must be one of {string.Join(", ", ServerModels.All)}";
        }

        var field = Sort?.TrimStart('-', '+');
        if (!string.IsNullOrEmpty(field) && !SortFields.Contains(field, StringComparer.OrdinalIgnoreCase))
        {
            return $"sort must be one of {string.Join(", ", SortFields)} (prefix '-' for descending)";
        }

        return null;
    }
}
