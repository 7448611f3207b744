using System.Text;
using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

/// <summary>The file store on a real temporary directory, with real symlinks pointing in and out of the root.</summary>
public sealed class FtpFileStoreTests : IDisposable
{
    private readonly DirectoryInfo _sandbox = Directory.CreateTempSubdirectory("gateway-ftp-");
    private readonly string _root;
    private readonly string _outside;
    private readonly FtpFileStore _store;

    public FtpFileStoreTests()
    {
        _root = Path.Join(_sandbox.FullName, "root");
        _outside = Path.Join(_sandbox.FullName, "outside");
        Directory.CreateDirectory(Path.Join(_root, "pub", "real"));
        Directory.CreateDirectory(_outside);
        File.WriteAllText(Path.Join(_root, "pub", "real", "inside.txt"), "inside");
        File.WriteAllText(Path.Join(_outside, "secret.txt"), "secret");

        File.CreateSymbolicLink(Path.Join(_root, "secret-link"), Path.Join(_outside, "secret.txt"));
        Directory.CreateSymbolicLink(Path.Join(_root, "out"), _outside);
        Directory.CreateSymbolicLink(Path.Join(_root, "pub", "up"), "../..");                 // relative, escapes
        Directory.CreateSymbolicLink(Path.Join(_root, "pub", "alias"), Path.Join(_root, "pub", "real"));
        Directory.CreateSymbolicLink(Path.Join(_root, "hop"), Path.Join(_root, "out"));       // a link to a link that escapes
        File.CreateSymbolicLink(Path.Join(_root, "loop-a"), Path.Join(_root, "loop-b"));
        File.CreateSymbolicLink(Path.Join(_root, "loop-b"), Path.Join(_root, "loop-a"));
        _store = new FtpFileStore(_root);
    }

    public void Dispose() => _sandbox.Delete(recursive: true);

    [Theory]
    [InlineData("/secret-link")]
    [InlineData("/out/secret.txt")]
    [InlineData("/out")]
    [InlineData("/pub/up/outside/secret.txt")]
    [InlineData("/hop/secret.txt")]
    [InlineData("/loop-a")]
    public void SymlinksLeavingTheRootAreNotFollowed(string path)
    {
        Assert.Null(_store.MapPath(path));
        Assert.Null(_store.Stat(path));
        Assert.ThrowsAny<IOException>(() => _store.OpenRead(path, 0).Dispose());
    }

    [Theory]
    [InlineData("/../../outside/secret.txt", "root/outside/secret.txt")]
    [InlineData("/pub/../../..", "root")]
    [InlineData("pub/real/inside.txt", "root/pub/real/inside.txt")]
    [InlineData("/pub/alias/inside.txt", "root/pub/real/inside.txt")]
    [InlineData("/new/file name.txt", "root/new/file name.txt")]
    public void PathsMapInsideTheRoot(string path, string expected) =>
        Assert.Equal(Path.Join(_sandbox.FullName, expected), _store.MapPath(path));

    [Fact]
    public void ListingShowsLinksInsideTheRootAndHidesThoseThatLeaveIt()
    {
        // hop, out and secret-link lead outside, loop-a and loop-b nowhere: only pub is listed.
        Assert.Equal(["pub"], _store.List("/").Select(e => e.Name));
        var pub = _store.List("/pub");
        Assert.Equal(["alias", "real"], pub.Select(e => e.Name));
        Assert.All(pub, e => Assert.True(e.IsDirectory));
        Assert.Equal(6, _store.Stat("/pub/alias/inside.txt")?.Size);
    }

    [Fact]
    public async Task AtomicUploadIsInvisibleUntilCommittedAndLeavesNothingWhenCutOff()
    {
        await using (var upload = _store.BeginUpload("/pub/new.bin", FtpUploadMode.Replace, 0, atomic: true))
        {
            upload.Write(Encoding.ASCII.GetBytes("half"));
            Assert.DoesNotContain(_store.List("/pub"), e => e.Name.Contains("new", StringComparison.Ordinal) || e.Name.StartsWith('.'));
            Assert.Null(_store.Stat("/pub/new.bin"));
            // disposed without a commit: the client went away mid-upload
        }

        Assert.Empty(Directory.GetFiles(Path.Join(_root, "pub")));
        await using (var upload = _store.BeginUpload("/pub/new.bin", FtpUploadMode.Replace, 0, atomic: true))
        {
            upload.Write(Encoding.ASCII.GetBytes("complete"));
            await upload.CommitAsync();
        }

        Assert.Equal("complete", await File.ReadAllTextAsync(Path.Join(_root, "pub", "new.bin")));
        Assert.Equal(["new.bin"], Directory.GetFiles(Path.Join(_root, "pub")).Select(Path.GetFileName));
    }

    [Fact]
    public async Task AtomicAppendKeepsTheOriginalWholeUntilTheCommit()
    {
        var target = Path.Join(_root, "pub", "real", "inside.txt");
        await using (var upload = _store.BeginUpload("/pub/real/inside.txt", FtpUploadMode.Append, 0, atomic: true))
        {
            upload.Write(Encoding.ASCII.GetBytes(" more"));
            Assert.Equal("inside", await File.ReadAllTextAsync(target));
            await upload.CommitAsync();
        }

        Assert.Equal("inside more", await File.ReadAllTextAsync(target));
    }

    [Fact]
    public async Task NonAtomicUploadKeepsWhatArrivedAndResumesAtAnOffset()
    {
        await using (var upload = _store.BeginUpload("/part.bin", FtpUploadMode.Replace, 0, atomic: false))
        {
            upload.Write(Encoding.ASCII.GetBytes("0123"));
        }

        Assert.Equal("0123", await File.ReadAllTextAsync(Path.Join(_root, "part.bin")));
        await using (var resume = _store.BeginUpload("/part.bin", FtpUploadMode.Replace, 2, atomic: false))
        {
            resume.Write(Encoding.ASCII.GetBytes("xyz"));
            await resume.CommitAsync();
        }

        Assert.Equal("01xyz", await File.ReadAllTextAsync(Path.Join(_root, "part.bin")));
        using var reader = _store.OpenRead("/part.bin", 3);
        Assert.Equal((byte)'y', reader.ReadByte());
    }

    [Fact]
    public async Task LargeUploadsStartingMidFileLandIntactAcrossWritebackChunks()
    {
        // Resumed at an offset, in odd-sized writes that cross several writeback nudges (which name file
        // ranges by offset): every byte lands where it belongs.
        var head = new byte[1000];
        Random.Shared.NextBytes(head);
        await File.WriteAllBytesAsync(Path.Join(_root, "big.bin"), head);
        var body = new byte[(int)(2.5 * FtpUpload.WritebackChunkBytes)];
        Random.Shared.NextBytes(body);
        await using (var upload = _store.BeginUpload("/big.bin", FtpUploadMode.Replace, 700, atomic: false))
        {
            for (var at = 0; at < body.Length; at += 300_007)
            {
                upload.Write(body.AsSpan(at, Math.Min(300_007, body.Length - at)));
            }

            await upload.CommitAsync();
        }

        var stored = await File.ReadAllBytesAsync(Path.Join(_root, "big.bin"));
        Assert.Equal([.. head[..700], .. body], stored);
    }

    [Fact]
    public void UploadNamesInProgressCannotBeReachedByPath()
    {
        File.WriteAllText(Path.Join(_root, FtpFileStore.UploadPrefix + "stale"), "x");
        Assert.Null(_store.MapPath("/" + FtpFileStore.UploadPrefix + "stale"));
        Assert.DoesNotContain(_store.List("/"), e => e.Name.StartsWith(FtpFileStore.UploadPrefix, StringComparison.Ordinal));
    }

    [Fact]
    public void DirectoryOperationsStayInsideAndTheRootCannotBeRemoved()
    {
        _store.MakeDirectory("/pub/made");
        Assert.True(Directory.Exists(Path.Join(_root, "pub", "made")));
        Assert.Throws<IOException>(() => _store.MakeDirectory("/pub/made"));
        _store.Rename("/pub/made", "/pub/renamed");
        _store.RemoveDirectory("/pub/renamed");
        Assert.False(Directory.Exists(Path.Join(_root, "pub", "renamed")));
        Assert.Throws<UnauthorizedAccessException>(() => _store.RemoveDirectory("/"));
        Assert.Throws<UnauthorizedAccessException>(() => _store.MakeDirectory("/out/evil"));
        Assert.Throws<UnauthorizedAccessException>(() => _store.Rename("/pub/real/inside.txt", "/out/stolen.txt"));
        Assert.True(File.Exists(Path.Join(_root, "pub", "real", "inside.txt")));
        Assert.Throws<UnauthorizedAccessException>(() => _store.Delete("/pub/real"));
    }
}
