using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Gateway.Protocols.Framing;
using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

public class FtpCommandParserTests
{
    private static FtpCommand Parse(byte[] line) => FtpCommandParser.Parse(new ReadOnlySequence<byte>(line));

    public static TheoryData<FtpVerb> Verbs() => [.. Enum.GetValues<FtpVerb>().Where(v => v != FtpVerb.Unknown)];

    [Theory]
    [MemberData(nameof(Verbs))]
    public void EveryVerbParsesInAnyCase(FtpVerb verb)
    {
        var name = verb.ToString().ToUpperInvariant();
        Assert.Equal(verb, FtpCommandParser.Parse(name).Verb);
        Assert.Equal(verb, FtpCommandParser.Parse(name.ToLowerInvariant() + " x").Verb);
        Assert.Equal(name, FtpCommandParser.Parse(verb.ToString() + " x").Name);
    }

    [Theory]
    [InlineData("XPWD", FtpVerb.Pwd)]
    [InlineData("XCWD dir", FtpVerb.Cwd)]
    [InlineData("XCUP", FtpVerb.Cdup)]
    [InlineData("xmkd new", FtpVerb.Mkd)]
    [InlineData("XRMD old", FtpVerb.Rmd)]
    public void XAliasesMapToTheirRfc959Verbs(string line, FtpVerb verb) => Assert.Equal(verb, FtpCommandParser.Parse(line).Verb);

    [Theory]
    [InlineData("STOR file with spaces.txt", "file with spaces.txt")]
    [InlineData("  noop", "")]
    [InlineData("CWD  leading space", " leading space")]
    [InlineData("RETR trailing space ", "trailing space ")]
    [InlineData("LIST -la", "-la")]
    [InlineData("RNTO a\\b", "a\\b")]
    [InlineData("USER", "")]
    public void ArgumentIsEverythingAfterTheFirstSpaceVerbatim(string line, string argument) =>
        Assert.Equal(argument, FtpCommandParser.Parse(line).Argument);

    [Fact]
    public void Utf8PathsAreDecodedAndOtherBytesReadAsLatin1()
    {
        var utf8 = Parse(Encoding.UTF8.GetBytes("STOR héllo wörld ✓.txt"));
        Assert.Equal(("héllo wörld ✓.txt", FtpVerb.Stor), (utf8.Argument, utf8.Verb));
        var latin1 = Parse([.. "DELE caf"u8, 0xE9]);
        Assert.Equal("café", latin1.Argument);
    }

    [Fact]
    public void TelnetInterruptAndSynchBeforeAborAreStripped()
    {
        // What clients send for an urgent abort: IAC IP, IAC DM, then the command.
        var abort = Parse([255, 244, 255, 242, .. "ABOR"u8]);
        Assert.Equal((FtpVerb.Abor, ""), (abort.Verb, abort.Argument));
        var negotiation = Parse([255, 251, 1, .. "NOOP"u8]);
        Assert.Equal(FtpVerb.Noop, negotiation.Verb);
        var escaped = Parse([.. "RETR a"u8, 255, 255, .. "b"u8]);
        Assert.Equal("aÿb", escaped.Argument);
    }

    [Theory]
    [InlineData("")]
    [InlineData("HELLO world")]
    [InlineData("\u0001\u0002")]
    [InlineData("GET / HTTP/1.1")]
    public void GarbageIsAnUnknownVerb(string line) => Assert.Equal(FtpVerb.Unknown, FtpCommandParser.Parse(line).Verb);

    [Fact]
    public void PasswordNeverAppearsWhenACommandIsLogged()
    {
        Assert.Equal("PASS ****", FtpCommandParser.Parse("PASS hunter2").ToString());
        Assert.Equal("CWD /pub", FtpCommandParser.Parse("cwd /pub").ToString());
    }

    [Fact]
    public async Task LineOverTheLimitIsTooLargeAndOneAtTheLimitParses()
    {
        var pipe = new Pipe();
        var atLimit = "STOR " + new string('a', FtpCommandParser.MaxLineBytes - 5);
        await pipe.Writer.WriteAsync(Encoding.ASCII.GetBytes(atLimit + "\r\n" + new string('b', FtpCommandParser.MaxLineBytes + 1) + "\r\n"));
        var reader = new ProtocolReader(pipe.Reader, FtpCommandParser.MaxLineBytes);
        var first = await reader.ReadAsync(LineReader.Instance);
        Assert.Equal(FtpVerb.Stor, FtpCommandParser.Parse(first.Message).Verb);
        reader.Advance();
        Assert.Equal(ProtocolReadStatus.TooLarge, (await reader.ReadAsync(LineReader.Instance)).Status);
    }
}
