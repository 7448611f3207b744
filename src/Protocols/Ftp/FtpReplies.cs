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
