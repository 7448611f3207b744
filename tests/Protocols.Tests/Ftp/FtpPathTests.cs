using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

public class FtpPathTests
{
    [Theory]
    [InlineData("/", "a", "/a")]
    [InlineData("/a/b", "..", "/a")]
    [InlineData("/a/b", "../..", "/")]
    [InlineData("/", "../../etc/passwd", "/etc/passwd")]
    [InlineData("/a", "/../../x", "/x")]
    [InlineData("/a", "/b/./c/../d", "/b/d")]
    [InlineData("/a", "", "/a")]
    [InlineData("/a", null, "/a")]
    [InlineData("/", "//x//y/", "/x/y")]
    [InlineData("/", "a\\..\\..\\b", "/a\\..\\..\\b")]
    [InlineData("/pub", "./ünïcode dir/../f.txt", "/pub/f.txt")]
    [InlineData("/", "...", "/...")]
    [InlineData("/a", "b/", "/a/b")]
    public void ResolveNormalisesAndNeverClimbsAboveTheRoot(string current, string? argument, string expected) =>
        Assert.Equal(expected, FtpPath.Resolve(current, argument));

    [Fact]
    public void ParentNameAndQuote()
    {
        Assert.Equal(("/a", "b"), (FtpPath.Parent("/a/b"), FtpPath.Name("/a/b")));
        Assert.Equal(("/", ""), (FtpPath.Parent("/"), FtpPath.Name("/")));
        Assert.Equal("\"/say \"\"hi\"\"\"", FtpPath.Quote("/say \"hi\""));
    }
}
