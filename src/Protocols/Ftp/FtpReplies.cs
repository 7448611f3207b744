using System.Buffers;
using System.Globalization;
using System.Text;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Control-channel replies (RFC 959, 4.2): <c>code text CRLF</c>; a multi-line reply is <c>code-first</c>,
/// continuation lines indented by a space (so none can be mistaken for an end line), then <c>code last</c>.
/// </summary>
public static class FtpReplies
{
    public static void Write(IBufferWriter<byte> output, int code, string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        // One reply never spans lines unless asked to, nor carries a control character: replies echo client input
        // (an unknown verb, a file name), and a terminal printing them must not receive escape sequences.
        WriteLine(output, string.Create(CultureInfo.InvariantCulture, $"{code} {PrintableText.OneLine(text)}"));
    }

    public static void WriteMultiline(IBufferWriter<byte> output, int code, string first, IEnumerable<string> lines, string last)
    {
        ArgumentNullException.ThrowIfNull(lines);
        WriteLine(output, string.Create(CultureInfo.InvariantCulture, $"{code}-{PrintableText.OneLine(first)}"));
        foreach (var line in lines)
        {
            WriteLine(output, " " + PrintableText.OneLine(line));
        }

        WriteLine(output, string.Create(CultureInfo.InvariantCulture, $"{code} {PrintableText.OneLine(last)}"));
    }

    /// <summary>Whether a name has a character no file name made here may have (C0 but tab, DEL, C1).</summary>
    internal static bool HasControlCharacters(string text) => text.AsSpan().ContainsAny(ControlCharacters);

    /// <summary>
    /// A name as a listing shows it: every control character, CR and LF included, becomes '?' (as vsftpd shows
    /// them), so a name made outside FTP cannot forge a line of a LIST a client parses.
    /// </summary>
    internal static string Printable(string name) =>
        !HasControlCharacters(name) ? name : string.Create(name.Length, name, static (chars, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                chars[i] = ControlCharacters.Contains(source[i]) ? '?' : source[i];
            }
        });

    private static void WriteLine(IBufferWriter<byte> output, string line)
    {
        ArgumentNullException.ThrowIfNull(output);
        var length = Encoding.UTF8.GetByteCount(line) + 2;
        var span = output.GetSpan(length);
        var written = Encoding.UTF8.GetBytes(line, span);
        span[written] = (byte)'\r';
        span[written + 1] = (byte)'\n';
        output.Advance(written + 2);
    }
}
