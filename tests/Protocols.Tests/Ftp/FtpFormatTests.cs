using System.Text;
using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

public class FtpFormatTests
{
    private static readonly DateTime Now = new(2026, 11, 23, 12, 0, 0, DateTimeKind.Utc);
    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    [Fact]
    public void ListLineShowsTimeWithinSixMonthsAndTheYearBeyond()
    {
        var recent = new FtpEntry("notes.txt", false, 1234, new DateTime(2026, 11, 3, 9, 5, 0, DateTimeKind.Utc), FileMode, "u");
        Assert.Equal("-rw-r--r--   1 ftp      ftp              1234 Nov  3 09:05 notes.txt", FtpListing.ListLine(recent, Now));
        var old = recent with { ModifiedUtc = new DateTime(2025, 2, 14, 0, 0, 0, DateTimeKind.Utc) };
        Assert.Equal("-rw-r--r--   1 ftp      ftp              1234 Feb 14  2025 notes.txt", FtpListing.ListLine(old, Now));
        var future = recent with { ModifiedUtc = Now.AddDays(3) };
        Assert.EndsWith("Nov 26  2026 notes.txt", FtpListing.ListLine(future, Now), StringComparison.Ordinal);
        var directory = new FtpEntry("my dir", true, 0, Now, FileMode | UnixFileMode.UserExecute, "u");
        Assert.StartsWith("drwxr--r--   2 ", FtpListing.ListLine(directory, Now), StringComparison.Ordinal);
        Assert.EndsWith(" my dir", FtpListing.ListLine(directory, Now), StringComparison.Ordinal);
    }

    [Fact]
    public void FactsLineHasEveryFactAndOneSpaceBeforeTheName()
    {
        var file = new FtpEntry(" spaced name.bin", false, 42, new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc), FileMode, "00ab");
        Assert.Equal("type=file;size=42;modify=20260102030405;perm=radfw;unique=00ab;  spaced name.bin", FtpListing.FactsLine(file, writable: true));
        Assert.Equal("type=file;size=42;modify=20260102030405;perm=r;unique=00ab;  spaced name.bin", FtpListing.FactsLine(file, writable: false));
        var directory = file with { Name = "d", IsDirectory = true };
        Assert.Equal("type=dir;modify=20260102030405;perm=elcmpdf;unique=00ab; d", FtpListing.FactsLine(directory, writable: true));
    }

    [Theory]
    [InlineData("20261123120000", true)]
    [InlineData("20261123120000.123", true)]
    [InlineData("2026112312", false)]
    [InlineData("tomorrow", false)]
    public void TimestampsAreUtcYyyyMmDdHhMmSs(string text, bool valid)
    {
        Assert.Equal(valid, FtpListing.TryParseTimestamp(text, out var utc));
        if (valid)
        {
            Assert.Equal((Now, DateTimeKind.Utc), (utc, utc.Kind));
            Assert.Equal("20261123120000", FtpListing.Timestamp(utc));
        }
    }

    [Fact]
    public void RepliesAreCrLfLinesAndMultilineRepliesEndWithTheCode()
    {
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        FtpReplies.Write(output, 257, FtpPath.Quote("/a \"b\"") + " created");
        FtpReplies.Write(output, 550, "bad\r\nname");
        FtpReplies.WriteMultiline(output, 211, "Features:", ["UTF8", "MLST type*;size*;modify*;"], "End");
        Assert.Equal(
            "257 \"/a \"\"b\"\"\" created\r\n550 bad  name\r\n211-Features:\r\n UTF8\r\n MLST type*;size*;modify*;\r\n211 End\r\n",
            Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Theory]
    [InlineData("plain text, tab\tand all", "plain text, tab\tand all")]
    [InlineData("\u001b[31mred\u001b[0m", "?[31mred?[0m")]
    [InlineData("bell\u0007 nul\u0000 del\u007f csi\u009b nel\u0085", "bell? nul? del? csi? nel?")]
    [InlineData("caf\u00e9 \u00a0 \u2028", "caf\u00e9 \u00a0 \u2028")]
    public void ReplyTextCarriesNoControlCharacters(string text, string sent)
    {
        var output = new System.Buffers.ArrayBufferWriter<byte>();
        FtpReplies.Write(output, 550, text);
        Assert.Equal("550 " + sent + "\r\n", Encoding.UTF8.GetString(output.WrittenSpan));
    }

    [Fact]
    public void PasswordHashesVerifyOnlyTheirOwnPassword()
    {
        var hash = FtpPasswordHasher.Hash("correct horse", iterations: 1000);
        Assert.StartsWith("pbkdf2-sha256$1000$", hash, StringComparison.Ordinal);
        Assert.True(FtpPasswordHasher.IsWellFormed(hash));
        Assert.True(FtpPasswordHasher.Verify("correct horse", hash));
        Assert.False(FtpPasswordHasher.Verify("correct horse!", hash));
        Assert.NotEqual(hash, FtpPasswordHasher.Hash("correct horse", iterations: 1000)); // salted
        foreach (var malformed in new[] { null, "", "plain", "md5$1$a$b", "pbkdf2-sha256$x$AAAA$AAAA", "pbkdf2-sha256$10$!!$AAAA" })
        {
            Assert.False(FtpPasswordHasher.Verify("x", malformed));
            Assert.False(FtpPasswordHasher.IsWellFormed(malformed));
        }

        Assert.True(FtpPasswordHasher.Verify("default", FtpPasswordHasher.Hash("default")));
    }
}
