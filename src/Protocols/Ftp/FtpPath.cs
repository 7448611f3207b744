namespace Gateway.Protocols.Ftp;

/// <summary>
/// Virtual paths as the client sees them: absolute, '/'-separated, rooted at the user's root. Normalising is
/// pure string work — "." and empty segments vanish, ".." never climbs above "/", and a backslash is an
/// ordinary character, never a separator. Mapping to the disk (and symlinks) is the file store's job.
/// </summary>
public static class FtpPath
{
    public const string Root = "/";

    /// <summary>The absolute, normalised path that <paramref name="argument"/> names from <paramref name="current"/>.</summary>
    public static string Resolve(string current, string? argument)
    {
        ArgumentNullException.ThrowIfNull(current);
        if (string.IsNullOrEmpty(argument))
        {
            return Normalize(current);
        }

        return Normalize(argument.StartsWith('/') ? argument : $"{current}/{argument}");
    }

    public static string Normalize(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var segments = new List<string>();
        foreach (var segment in path.Split('/'))
        {
            switch (segment)
            {
                case "" or ".":
                    break;
                case "..":
                    if (segments.Count > 0)
                    {
                        segments.RemoveAt(segments.Count - 1);
                    }

                    break;
                default:
                    segments.Add(segment);
                    break;
            }
        }

        return Root + string.Join('/', segments);
    }

    /// <summary>The segments of a normalised path; none for "/".</summary>
    public static string[] Segments(string normalized) =>
        normalized.Split('/', StringSplitOptions.RemoveEmptyEntries);

    public static string Parent(string normalized)
    {
        var slash = normalized.LastIndexOf('/');
        return slash <= 0 ? Root : normalized[..slash];
    }

    public static string Name(string normalized) => normalized[(normalized.LastIndexOf('/') + 1)..];

    /// <summary>A path inside a 257 reply: quoted, with every quote inside doubled (RFC 959, appendix II).</summary>
    public static string Quote(string path) => $"\"{path.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";
}
