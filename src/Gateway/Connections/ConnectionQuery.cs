using System.ComponentModel;
using Microsoft.AspNetCore.Mvc;

namespace Gateway.Connections;

/// <summary>Filters, order and page of a connection listing (the query string of GET /admin/connections).</summary>
public sealed record ConnectionQuery
{
    public const int DefaultLimit = 100;
    public const int MaxLimit = 1000;

    public static readonly IReadOnlyList<string> SortFields =
        ["connectedAt", "lastActivityAt", "age", "idle", "bytesIn", "bytesOut", "messages", "listener", "remote", "protocol", "model", "id"];

    [Description("Only this protocol: echo, rpc, ftp.")]
    [FromQuery(Name = "protocol")]
    public string? Protocol { get; init; }

    [Description("Only this I/O model, e.g. kestrel.")]
    [FromQuery(Name = "model")]
    public string? Model { get; init; }

    [Description("Only remote addresses starting with this, e.g. 10.1. or 127.0.0.1:5123.")]
    [FromQuery(Name = "remote")]
    public string? Remote { get; init; }

    [Description("Only connections idle for at least this many seconds.")]
    [FromQuery(Name = "minIdleSeconds")]
    public double? MinIdleSeconds { get; init; }

    [Description("Field to sort by, '-' in front for descending: connectedAt (default), lastActivityAt, age, idle, bytesIn, bytesOut, messages, listener, remote, protocol, model, id.")]
    [FromQuery(Name = "sort")]
    public string? Sort { get; init; }

    [Description("Matches to skip (default 0).")]
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

        if (MinIdleSeconds < 0)
        {
            return "minIdleSeconds must be 0 or more";
        }

        var field = Sort?.TrimStart('-', '+');
        if (!string.IsNullOrEmpty(field) && !SortFields.Contains(field, StringComparer.OrdinalIgnoreCase))
        {
            return $"sort must be one of {string.Join(", ", SortFields)} (prefix '-' for descending)";
        }

        return null;
    }
}
