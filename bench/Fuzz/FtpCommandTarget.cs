using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Gateway.Protocols.Framing;
using Gateway.Protocols.Ftp;

namespace Gateway.Fuzz;

/// <summary>
/// The FTP control channel's reading as FtpHandler does it: the input (after its chunking byte) goes through a
/// pipe into ProtocolReader with LineReader at <see cref="FtpCommandParser.MaxLineBytes"/>, and every line is
/// parsed by <see cref="FtpCommandParser.Parse(in System.Buffers.ReadOnlySequence{byte})"/>.
/// </summary>
/// <remarks>
/// Fine: "too large" for a line over the limit (the handler answers 500 and reads on). Findings: an exception,
/// lines that differ from a plain split of the input at LF (one CR before it dropped) when no line is over the
/// limit, "too large" when none is or none when one is, or a parsed command that breaks its own shape
/// (verb name upper-case without spaces, a known verb's name being its own, no LF in the argument, PASS
/// redacted in ToString).
/// </remarks>
internal sealed class FtpCommandTarget : IFuzzTarget
{
    private const int Max = FtpCommandParser.MaxLineBytes;
    private static readonly HashSet<string> Aliases = ["XPWD", "XCWD", "XCUP", "XMKD", "XRMD"];

    private static readonly PipeOptions Inline = new(
        readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, pauseWriterThreshold: 0, useSynchronizationContext: false);

    public string Name => "ftp-command";

    public void Run(byte[] input)
    {
        var pipe = new Pipe(Inline);
        var reader = new ProtocolReader(pipe.Reader, Max);
        var lines = new List<byte[]>();
        var tooLarge = false;
        long unparsed = -1;
        foreach (var chunk in Chunking.Split(input))
        {
            pipe.Writer.Write(chunk.Span);
            pipe.Writer.FlushAsync().AsTask().GetAwaiter().GetResult();
            Drain(reader, lines, ref tooLarge, ref unparsed);
        }

        pipe.Writer.Complete();
        Drain(reader, lines, ref tooLarge, ref unparsed);
        if (unparsed < 0)
        {
            throw new FuzzFinding("the reader never reported the end of the input");
        }

        CompareWithSplit(Chunking.Data(input), lines, tooLarge, unparsed);
    }

    private static void Drain(ProtocolReader reader, List<byte[]> lines, ref bool tooLarge, ref long unparsed)
    {
        // Bounded: every message consumes input, and the input is finite.
        while (unparsed < 0 && reader.TryRead(LineReader.Instance, out var read))
        {
            switch (read.Status)
            {
                case ProtocolReadStatus.Message:
                    var line = read.Message.ToArray();
                    CheckCommand(FtpCommandParser.Parse(read.Message), line);
                    reader.Advance();
                    lines.Add(line);
                    break;
                case ProtocolReadStatus.TooLarge:
                    tooLarge = true;
                    break;
                case ProtocolReadStatus.Completed:
                    unparsed = read.UnparsedBytes;
                    break;
                default:
                    throw new FuzzFinding($"unexpected read status {read.Status}");
            }
        }
    }

    private static void CheckCommand(FtpCommand command, byte[] line)
    {
        if (!command.Name.Equals(command.Name.ToUpperInvariant(), StringComparison.Ordinal) || command.Name.Contains(' ', StringComparison.Ordinal))
        {
            throw new FuzzFinding($"verb name {Quote(command.Name)} is not upper-case without spaces; line {Hex(line)}");
        }

        if (command.Verb != FtpVerb.Unknown && !command.Name.Equals(command.Verb.ToString(), StringComparison.OrdinalIgnoreCase) && !Aliases.Contains(command.Name))
        {
            throw new FuzzFinding($"{Quote(command.Name)} parsed as {command.Verb}; line {Hex(line)}");
        }

        if (command.Argument.Contains('\n', StringComparison.Ordinal))
        {
            throw new FuzzFinding($"an argument holds a line feed; line {Hex(line)}");
        }

        var shown = command.ToString();
        if (command.Verb == FtpVerb.Pass && shown != "PASS ****")
        {
            throw new FuzzFinding($"PASS shows as {Quote(shown)} in logs");
        }
    }

    /// <summary>The reference: split at LF, drop one CR before it; the tail without LF is left unparsed.</summary>
    private static void CompareWithSplit(byte[] data, List<byte[]> lines, bool tooLarge, long unparsed)
    {
        var expected = new List<byte[]>();
        var start = 0;
        int lf;
        while ((lf = Array.IndexOf(data, (byte)'\n', start)) >= 0)
        {
            var end = lf > start && data[lf - 1] == '\r' ? lf - 1 : lf;
            expected.Add(data[start..end]);
            start = lf + 1;
        }

        var tail = data.Length - start;
        var overLimit = expected.Any(l => l.Length > Max) || tail > Max + 2;
        if (overLimit != tooLarge)
        {
            throw new FuzzFinding(overLimit
                ? $"a line over {Max} bytes was not reported too large"
                : $"\"too large\" with no line over {Max} bytes (longest {expected.Select(l => l.Length).DefaultIfEmpty().Max()}, tail {tail})");
        }

        if (overLimit)
        {
            return; // after "too large" the reader drops what it buffered; the split no longer applies
        }

        if (lines.Count != expected.Count)
        {
            throw new FuzzFinding($"{lines.Count} lines read, {expected.Count} in the input");
        }

        for (var i = 0; i < lines.Count; i++)
        {
            if (!lines[i].AsSpan().SequenceEqual(expected[i]))
            {
                throw new FuzzFinding($"line {i} read as {Hex(lines[i])}, sent as {Hex(expected[i])}");
            }
        }

        if (unparsed != tail)
        {
            throw new FuzzFinding($"{unparsed} bytes left unparsed at the end, {tail} after the last LF");
        }
    }

    private static string Quote(string text) => $"\"{text}\"";

    private static string Hex(byte[] bytes) => bytes.Length <= 64 ? Convert.ToHexString(bytes) : Convert.ToHexString(bytes, 0, 64) + $"... ({bytes.Length} bytes)";

    public IEnumerable<byte[]> Seeds()
    {
        static byte[] Lines(byte chunk, string text) => Chunking.With(chunk, Encoding.UTF8.GetBytes(text));

        yield return Lines(0, "USER anonymous\r\nPASS secret\r\nSYST\r\nFEAT\r\nPWD\r\n");
        yield return Lines(1, "CWD /a/b c\r\nCDUP\r\nXPWD\r\nMKD new dir\nRMD x\r\n");
        yield return Lines(2, "TYPE I\r\nPASV\r\nEPSV\r\nPORT 127,0,0,1,4,1\r\nEPRT |1|127.0.0.1|1025|\r\n");
        yield return Lines(3, "REST 100\r\nRETR caf\u00e9.txt\r\nSTOR name with spaces\r\nAPPE a\r\nDELE a\r\n");
        yield return Lines(0, "RNFR old\r\nRNTO new\r\nSIZE f\r\nMDTM f\r\nMFMT 20240101000000 f\r\nOPTS UTF8 ON\r\nQUIT\r\n");
        yield return Lines(7, "list -la\r\n  nlst\r\nMLSD /\r\nMLST f\r\nSTAT\r\nNOOP\r\n\r\n\n\r\r\n");
        // Telnet: IAC IP, IAC DM before ABOR; an escaped 0xFF; option negotiation; a Latin-1 byte; a torn tail.
        yield return Chunking.With(0, [0xff, 0xf4, 0xff, 0xf2, .. "ABOR\r\n"u8, .. "RETR a"u8, 0xff, 0xff, .. "b\r\n"u8, 0xff, 0xfb, 0x01, .. "DELE "u8, 0xe9, .. "\r\nNOOP"u8]);
        yield return Chunking.With(0, [.. Encoding.ASCII.GetBytes("STOR " + new string('x', Max - 5) + "\r\n"), .. "NOOP\r\n"u8]);
        yield return Chunking.With(0, [.. Encoding.ASCII.GetBytes("STOR " + new string('x', Max) + "\r\n"), .. "NOOP\r\n"u8]);
    }

    public IEnumerable<byte[]> Dictionary() =>
        Enum.GetNames<FtpVerb>().Where(n => n != nameof(FtpVerb.Unknown)).Select(n => n.ToUpperInvariant())
            .Concat(Aliases)
            .Select(Encoding.ASCII.GetBytes)
            .Concat([[(byte)'\r', (byte)'\n'], [(byte)'\n'], [(byte)' '], [0xff, 0xff], [0xff, 0xf4], [0xff, 0xf2], [0xff, 0xfb], [0xff], [0xc3, 0xa9], [0xe9]]);
}
