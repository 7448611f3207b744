using System.Buffers;

namespace Gateway.Protocols;

/// <summary>
/// Text a peer chose, made safe to show on one line of a reply or a log: CR and LF become spaces, every other
/// control character (C0 but tab, DEL, C1) becomes '?'. Otherwise a client could end the line and forge the
/// next one (a reply, a log entry), or send escape sequences to the terminal that prints it.
/// </summary>
public static class PrintableText
{
    private static readonly SearchValues<char> ControlCharacters = SearchValues.Create(
        Enumerable.Range(0, 0x20).Where(c => c != '\t').Concat(Enumerable.Range(0x7F, 0x21)).Select(c => (char)c).ToArray());

    public static string OneLine(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (!text.AsSpan().ContainsAny(ControlCharacters))
        {
            return text;
        }

        return string.Create(text.Length, text, static (chars, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                var c = source[i];
                chars[i] = c is '\r' or '\n' ? ' ' : ControlCharacters.Contains(c) ? '?' : c;
            }
        });
    }

    /// <summary><see cref="OneLine(string)"/>, at most <paramref name="maxLength"/> characters: a longer text is cut, and ends in '…'.</summary>
    public static string OneLine(string text, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(text);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        if (text.Length > maxLength)
        {
            var cut = char.IsHighSurrogate(text[maxLength - 2]) ? maxLength - 2 : maxLength - 1; // never half a pair
            text = string.Concat(text.AsSpan(0, cut), "…");
        }

        return OneLine(text);
    }

    /// <summary>Whether the text has a control character (C0 but tab, DEL, C1): no name made here may have one.</summary>
    public static bool HasControlCharacters(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.AsSpan().ContainsAny(ControlCharacters);
    }

    /// <summary>
    /// A name as a listing shows it: every control character, CR and LF included, becomes '?' (as vsftpd shows
    /// them), so a name made outside FTP cannot forge a line of a LIST a client parses.
    /// </summary>
    public static string Escaped(string name) =>
        !HasControlCharacters(name) ? name : string.Create(name.Length, name, static (chars, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                chars[i] = ControlCharacters.Contains(source[i]) ? '?' : source[i];
            }
        });
}
