using System.Buffers;
using System.Text;

namespace Gateway.Protocols.Ftp;

/// <summary>The verbs the server knows; aliases (XPWD, XCWD, ...) map to their RFC 959 names.</summary>
public enum FtpVerb
{
    Unknown,
    User, Pass, Acct, Quit, Rein, Noop, Syst, Help, Stat, Site, Feat, Opts, Host, Clnt,
    Type, Mode, Stru, Allo,
    Pwd, Cwd, Cdup, Mkd, Rmd, Dele, Rnfr, Rnto, Size, Mdtm, Mfmt,
    List, Nlst, Mlsd, Mlst, Retr, Stor, Stou, Appe, Rest, Abor,
    Pasv, Epsv, Port, Eprt,
    Auth, Pbsz, Prot, Ccc,
}

/// <summary>One control-channel command: its verb, the name as sent (upper-cased), and the argument.</summary>
public readonly record struct FtpCommand(FtpVerb Verb, string Name, string Argument)
{
    public bool HasArgument => Argument.Length > 0;

    /// <summary>For logs: the argument of PASS never appears.</summary>
    public override string ToString() => Verb == FtpVerb.Pass ? "PASS ****" : HasArgument ? $"{Name} {Argument}" : Name;
}

/// <summary>
/// Parses a control line (without its CRLF). Telnet commands are stripped first: clients send ABOR after
/// IAC IP / IAC DM (RFC 959, 4.1.3), and IAC IAC stands for a literal 0xFF byte. The verb is the text before
/// the first space, case-insensitive; the argument is everything after that space, verbatim, so a path may
/// hold spaces. Paths are UTF-8 (RFC 2640); bytes that are not UTF-8 are read as Latin-1, as older clients send.
/// </summary>
public static class FtpCommandParser
{
    /// <summary>Longest control line accepted; a longer one is answered "500 Command too long".</summary>
    public const int MaxLineBytes = 4096;

    private const byte Iac = 255, Will = 251, Wont = 252, Do = 253, Dont = 254;
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static readonly Dictionary<string, FtpVerb> Verbs = CreateVerbs();

    public static FtpCommand Parse(in ReadOnlySequence<byte> line)
    {
        var length = checked((int)line.Length);
        var rented = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        try
        {
            line.CopyTo(rented);
            var text = StripTelnet(rented.AsSpan(0, length));
            return Parse(Decode(text));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    public static FtpCommand Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        line = line.TrimStart(' ', '\t').TrimEnd('\r', '\n');
        var space = line.IndexOf(' ', StringComparison.Ordinal);
        var name = (space < 0 ? line : line[..space]).ToUpperInvariant();
        var argument = space < 0 ? "" : line[(space + 1)..];
        var verb = Verbs.GetValueOrDefault(name, FtpVerb.Unknown);
        return new FtpCommand(verb, name, argument);
    }

    /// <summary>Removes Telnet command sequences in place; returns the bytes that are data.</summary>
    internal static Span<byte> StripTelnet(Span<byte> line)
    {
        var write = 0;
        for (var read = 0; read < line.Length; read++)
        {
            if (line[read] != Iac)
            {
                line[write++] = line[read];
                continue;
            }

            if (read + 1 >= line.Length)
            {
                break;
            }

            var command = line[++read];
            if (command == Iac)
            {
                line[write++] = Iac; // an escaped 0xFF data byte
            }
            else if (command is Will or Wont or Do or Dont)
            {
                read++; // option negotiation carries one more byte
            }

            // IP, DM, AYT, ...: two bytes, nothing to keep.
        }

        return line[..write];
    }

    private static string Decode(ReadOnlySpan<byte> bytes)
    {
        try
        {
            return StrictUtf8.GetString(bytes);
        }
        catch (DecoderFallbackException)
        {
            return Encoding.Latin1.GetString(bytes);
        }
    }

    private static Dictionary<string, FtpVerb> CreateVerbs()
    {
        var verbs = Enum.GetValues<FtpVerb>()
            .Where(v => v != FtpVerb.Unknown)
            .ToDictionary(v => v.ToString().ToUpperInvariant(), v => v, StringComparer.Ordinal);
        verbs["XPWD"] = FtpVerb.Pwd;
        verbs["XCWD"] = FtpVerb.Cwd;
        verbs["XCUP"] = FtpVerb.Cdup;
        verbs["XMKD"] = FtpVerb.Mkd;
        verbs["XRMD"] = FtpVerb.Rmd;
        return verbs;
    }
}
