using System.Globalization;
using System.Text;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Listing lines every client parses: LIST in the <c>ls -l</c> format (English month names, UTC, time of day
/// within six months, else the year), and MLSD/MLST facts (RFC 3659) with exactly one space before the name.
/// </summary>
public static class FtpListing
{
    private static readonly TimeSpan SixMonths = TimeSpan.FromDays(182);

    public static string ListLine(FtpEntry entry, DateTime nowUtc)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var mtime = entry.ModifiedUtc;
        var recent = mtime <= nowUtc.AddHours(1) && nowUtc - mtime < SixMonths;
        var date = string.Create(CultureInfo.InvariantCulture,
            $"{mtime:MMM} {mtime.Day,2} {(recent ? mtime.ToString("HH:mm", CultureInfo.InvariantCulture) : " " + mtime.Year.ToString(CultureInfo.InvariantCulture))}");
        return string.Create(CultureInfo.InvariantCulture,
            $"{Permissions(entry)} {(entry.IsDirectory ? 2 : 1),3} {"ftp",-8} {"ftp",-8} {entry.Size,12} {date} {entry.Name}");
    }

    /// <summary>An MLSD line, or the fact part of an MLST reply: <c>type=file;size=3;modify=...;perm=...;unique=...; name</c>.</summary>
    public static string FactsLine(FtpEntry entry, bool writable)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var facts = new StringBuilder();
        facts.Append(CultureInfo.InvariantCulture, $"type={(entry.IsDirectory ? "dir" : "file")};");
        if (!entry.IsDirectory)
        {
            facts.Append(CultureInfo.InvariantCulture, $"size={entry.Size};");
        }

        facts.Append(CultureInfo.InvariantCulture, $"modify={Timestamp(entry.ModifiedUtc)};");
        // RFC 3659 7.5.5: files r(etrieve) a(ppend) d(elete) f(rename) w(rite); directories e(nter) l(ist)
        // c(reate) m(kdir) p(urge) d f.
        var perm = entry.IsDirectory ? (writable ? "elcmpdf" : "el") : (writable ? "radfw" : "r");
        facts.Append(CultureInfo.InvariantCulture, $"perm={perm};unique={entry.Unique}; {entry.Name}");
        return facts.ToString();
    }

    /// <summary>MDTM and MLSD's modify fact: <c>YYYYMMDDHHMMSS</c> in UTC.</summary>
    public static string Timestamp(DateTime utc) => utc.ToString("yyyyMMddHHmmss", CultureInfo.InvariantCulture);

    /// <summary>Parses a <c>YYYYMMDDHHMMSS[.sss]</c> time (MFMT, SITE UTIME) as UTC.</summary>
    public static bool TryParseTimestamp(string text, out DateTime utc)
    {
        ArgumentNullException.ThrowIfNull(text);
        var whole = text.Split('.')[0];
        return DateTime.TryParseExact(whole, "yyyyMMddHHmmss", CultureInfo.InvariantCulture,
            DateTimeStyles.AdjustToUniversal | DateTimeStyles.AssumeUniversal, out utc);
    }

    private static string Permissions(FtpEntry entry)
    {
        var mode = entry.Mode;
        Span<char> text = stackalloc char[10];
        text[0] = entry.IsDirectory ? 'd' : '-';
        ReadOnlySpan<(UnixFileMode Bit, char Letter)> bits =
        [
            (UnixFileMode.UserRead, 'r'), (UnixFileMode.UserWrite, 'w'), (UnixFileMode.UserExecute, 'x'),
            (UnixFileMode.GroupRead, 'r'), (UnixFileMode.GroupWrite, 'w'), (UnixFileMode.GroupExecute, 'x'),
            (UnixFileMode.OtherRead, 'r'), (UnixFileMode.OtherWrite, 'w'), (UnixFileMode.OtherExecute, 'x'),
        ];
        for (var i = 0; i < bits.Length; i++)
        {
            text[i + 1] = (mode & bits[i].Bit) != 0 ? bits[i].Letter : '-';
        }

        return new string(text);
    }
}
