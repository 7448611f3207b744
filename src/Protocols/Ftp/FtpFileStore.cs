namespace Gateway.Protocols.Ftp;

/// <summary>A file or directory as listings show it.</summary>
public sealed record FtpEntry(string Name, bool IsDirectory, long Size, DateTime ModifiedUtc, UnixFileMode Mode, string Unique);

/// <summary>
/// The files under one root directory. Every virtual path is mapped component by component; a symlink on the
/// way is followed only when its final target is inside the root (re-walked from the root, so a link through
/// another link cannot escape either). Names used for uploads in progress are invisible: never listed, never
/// reachable by a path.
/// </summary>
/// <remarks>
/// A symlink swapped between the check and the open (TOCTOU) could still escape; closing that needs
/// openat2(RESOLVE_BENEATH) or a chroot, which a portable .NET file API does not offer.
/// </remarks>
public sealed class FtpFileStore
{
    /// <summary>Prefix of the hidden temporary name an atomic upload is written under.</summary>
    public const string UploadPrefix = ".gateway-upload-";

    private const int MaxLinkDepth = 32;

    public FtpFileStore(string rootDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(rootDirectory);
        var full = Path.GetFullPath(rootDirectory);
        Directory.CreateDirectory(full);
        RootPath = Path.TrimEndingDirectorySeparator(new DirectoryInfo(full).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? full);
    }

    /// <summary>The root on disk, symlinks resolved.</summary>
    public string RootPath { get; }

    /// <summary>The path on disk for a normalised virtual path, or null when it would leave the root.</summary>
    public string? MapPath(string virtualPath) => Walk(FtpPath.Segments(FtpPath.Normalize(virtualPath)), 0);

    public FtpEntry? Stat(string virtualPath)
    {
        var physical = MapPath(virtualPath);
        if (physical is null)
        {
            return null;
        }

        FileSystemInfo info = Directory.Exists(physical) ? new DirectoryInfo(physical) : new FileInfo(physical);
        return info.Exists ? Entry(info, FtpPath.Name(FtpPath.Normalize(virtualPath))) : null;
    }

    /// <summary>The entries of a directory, names sorted ordinally; links that leave the root are left out.</summary>
    public IReadOnlyList<FtpEntry> List(string virtualDirectory)
    {
        var physical = MapPath(virtualDirectory) ?? throw new DirectoryNotFoundException(virtualDirectory);
        var entries = new List<FtpEntry>();
        foreach (var info in new DirectoryInfo(physical).EnumerateFileSystemInfos())
        {
            if (info.Name.StartsWith(UploadPrefix, StringComparison.Ordinal))
            {
                continue;
            }

            var target = info.LinkTarget is null ? info : Follow(info);
            if (target is { Exists: true })
            {
                entries.Add(Entry(target, info.Name));
            }
        }

        entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return entries;
    }

    /// <summary>
    /// Opens a regular file to read from <paramref name="offset"/> (REST); anything else (a FIFO, a device) throws
    /// <see cref="NotARegularFileException"/> without blocking.
    /// </summary>
    public FileStream OpenRead(string virtualPath, long offset)
    {
        var stream = RegularFile.OpenRead(MapExisting(virtualPath));
        try
        {
            if (offset > 0)
            {
                stream.Seek(offset, SeekOrigin.Begin);
            }

            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Starts writing a file. Atomic: the bytes go to a hidden name in the same directory and replace the
    /// target only on <see cref="FtpUpload.CommitAsync"/> — a cut-off upload leaves the old file (or none).
    /// Not atomic: the target itself is written, so a cut-off upload keeps what arrived (and can be resumed).
    /// </summary>
    public FtpUpload BeginUpload(string virtualPath, FtpUploadMode mode, long offset, bool atomic)
    {
        var target = MapPath(virtualPath) ?? throw new UnauthorizedAccessException(virtualPath);
        if (Directory.Exists(target))
        {
            throw new UnauthorizedAccessException($"{virtualPath} is a directory");
        }

        if (!atomic)
        {
            // What a refused upload goes back to: the file as it was before an append or before a resumed
            // part; nothing at all when the upload created or replaced it (its old content is gone already).
            var existing = File.Exists(target) ? new FileInfo(target).Length : -1;
            if (mode == FtpUploadMode.Replace && offset > Math.Max(existing, 0))
            {
                // Resuming continues what is there: a REST past the end would leave a hole (or, near 2^63, a file
                // no file system can hold).
                throw new ArgumentOutOfRangeException(nameof(offset), offset, $"past the end of {virtualPath} ({Math.Max(existing, 0)} bytes)");
            }

            var keepOnDiscard = existing < 0 ? -1 : mode == FtpUploadMode.Append ? existing : offset > 0 ? Math.Min(offset, existing) : -1;
            var stream = RegularFile.OpenWrite(target);
            try
            {
                if (mode == FtpUploadMode.Replace)
                {
                    stream.SetLength(offset);
                    stream.Seek(offset, SeekOrigin.Begin);
                }
                else
                {
                    stream.Seek(0, SeekOrigin.End);
                }

                return new FtpUpload(stream, target, temporary: null, keepOnDiscard);
            }
            catch
            {
                stream.Dispose();
                throw;
            }
        }

        var temporary = Path.Join(Path.GetDirectoryName(target), UploadPrefix + Guid.NewGuid().ToString("N"));
        // Synchronous writes: on Linux an "asynchronous" FileStream write is a blocking write on a pool thread
        // anyway, and the upload already runs on a task of its own; writes land in the page cache.
        var upload = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 0, FileOptions.None);
        try
        {
            if (mode == FtpUploadMode.Append && File.Exists(target))
            {
                // Append to a copy: the original stays whole until the commit (and only a regular file is copied).
                using var original = RegularFile.OpenRead(target);
                original.CopyTo(upload);
            }

            return new FtpUpload(upload, target, temporary, keepOnDiscard: -1);
        }
        catch
        {
            upload.Dispose();
            File.Delete(temporary);
            throw;
        }
    }

    public void Delete(string virtualPath)
    {
        var physical = MapExisting(virtualPath);
        if (Directory.Exists(physical))
        {
            throw new UnauthorizedAccessException($"{virtualPath} is a directory");
        }

        File.Delete(physical);
    }

    public void MakeDirectory(string virtualPath)
    {
        var physical = MapPath(virtualPath) ?? throw new UnauthorizedAccessException(virtualPath);
        if (Path.Exists(physical))
        {
            throw new IOException($"{virtualPath} already exists");
        }

        Directory.CreateDirectory(physical);
    }

    public void RemoveDirectory(string virtualPath)
    {
        if (FtpPath.Normalize(virtualPath) == FtpPath.Root)
        {
            throw new UnauthorizedAccessException("the root cannot be removed");
        }

        Directory.Delete(MapExisting(virtualPath), recursive: false);
    }

    public void Rename(string fromVirtualPath, string toVirtualPath)
    {
        var from = MapExisting(fromVirtualPath);
        var to = MapPath(toVirtualPath) ?? throw new UnauthorizedAccessException(toVirtualPath);
        if (Directory.Exists(from))
        {
            Directory.Move(from, to);
        }
        else
        {
            File.Move(from, to, overwrite: true);
        }
    }

    public void SetModified(string virtualPath, DateTime modifiedUtc) =>
        File.SetLastWriteTimeUtc(MapExisting(virtualPath), modifiedUtc);

    private string MapExisting(string virtualPath) =>
        MapPath(virtualPath) is { } physical && Path.Exists(physical) ? physical : throw new FileNotFoundException(virtualPath);

    private string? Walk(IEnumerable<string> segments, int depth)
    {
        if (depth > MaxLinkDepth)
        {
            return null; // a loop of links
        }

        var current = RootPath;
        foreach (var segment in segments)
        {
            if (segment.Contains('\0', StringComparison.Ordinal) || segment.StartsWith(UploadPrefix, StringComparison.Ordinal))
            {
                return null;
            }

            var next = Path.Join(current, segment);
            var info = new FileInfo(next);
            if (info.LinkTarget is null)
            {
                current = next;
                continue;
            }

            // Re-walk the link's final target from the root: every directory on its way is checked too.
            var target = ResolveLink(info);
            if (target is null || !IsInside(Path.GetFullPath(target.FullName)))
            {
                return null;
            }

            var inside = Path.GetRelativePath(RootPath, Path.GetFullPath(target.FullName));
            var resolved = Walk(inside == "." ? [] : inside.Split(Path.DirectorySeparatorChar), depth + 1);
            if (resolved is null)
            {
                return null;
            }

            current = resolved;
        }

        return current;
    }

    private static FileSystemInfo? ResolveLink(FileSystemInfo link)
    {
        try
        {
            return link.ResolveLinkTarget(returnFinalTarget: true);
        }
        catch (IOException)
        {
            return null; // too many levels of links (ELOOP)
        }
    }

    private FileSystemInfo? Follow(FileSystemInfo link)
    {
        var target = ResolveLink(link);
        if (target is null || !IsInside(Path.GetFullPath(target.FullName)))
        {
            return null;
        }

        var mapped = Walk(Path.GetRelativePath(RootPath, Path.GetFullPath(target.FullName)).Split(Path.DirectorySeparatorChar), 1);
        return mapped is null ? null : Directory.Exists(mapped) ? new DirectoryInfo(mapped) : new FileInfo(mapped);
    }

    private bool IsInside(string fullPath) =>
        fullPath == RootPath || fullPath.StartsWith(RootPath + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    private static FtpEntry Entry(FileSystemInfo info, string name)
    {
        var isDirectory = info is DirectoryInfo;
        return new FtpEntry(name, isDirectory, isDirectory ? 0 : ((FileInfo)info).Length, info.LastWriteTimeUtc,
            info.UnixFileMode, Unique(info.FullName));
    }

    // MLSD's "unique" fact: stable for a path across sessions (FNV-1a 64; the inode is not exposed portably).
    private static string Unique(string fullPath)
    {
        var hash = 14695981039346656037UL;
        foreach (var c in fullPath)
        {
            hash = (hash ^ c) * 1099511628211UL;
        }

        return hash.ToString("x16", System.Globalization.CultureInfo.InvariantCulture);
    }
}

public enum FtpUploadMode
{
    /// <summary>STOR: the upload replaces the file (from the REST offset when not atomic).</summary>
    Replace,

    /// <summary>APPE: the upload is added to the end of the file.</summary>
    Append,
}

/// <summary>
/// An upload in progress: complete it with <see cref="CommitAsync"/>. Disposing without that abandons it: an
/// atomic upload leaves nothing, a non-atomic one keeps what arrived (to be resumed) unless
/// <see cref="DiscardAsync"/> put the file back as it was.
/// </summary>
public sealed class FtpUpload(FileStream stream, string target, string? temporary, long keepOnDiscard) : IAsyncDisposable
{
    /// <summary>How much is written between two nudges to start writeback.</summary>
    internal const long WritebackChunkBytes = 8 * 1024 * 1024;

    private bool _committed;
    private long _unsyncedFrom = -1;

    /// <summary>The file's length before this upload's first byte (the REST offset, or what an append adds to).</summary>
    public long StartLength { get; } = stream.Position;
    private long _unsyncedBytes;

    /// <summary>
    /// Writes to the page cache and, every <see cref="WritebackChunkBytes"/>, starts writing those pages to disk
    /// (Linux <c>sync_file_range</c>), so the disk works while the network delivers the next chunk, the fsync
    /// before 226 finds little left to do, and a large upload never piles up gigabytes of dirty pages.
    /// </summary>
    public void Write(ReadOnlySpan<byte> bytes)
    {
        if (_unsyncedFrom < 0)
        {
            _unsyncedFrom = stream.Position;
        }

        stream.Write(bytes);
        _unsyncedBytes += bytes.Length;
        if (_unsyncedBytes >= WritebackChunkBytes)
        {
            FileWriteback.Start(stream.SafeFileHandle, _unsyncedFrom, _unsyncedBytes);
            _unsyncedFrom += _unsyncedBytes;
            _unsyncedBytes = 0;
        }
    }

    /// <summary>Flushes to disk and, for an atomic upload, renames it over the target.</summary>
    public async Task CommitAsync()
    {
        stream.Flush(flushToDisk: true); // durable before it is renamed into place and before 226
        await stream.DisposeAsync();
        if (temporary is not null)
        {
            File.Move(temporary, target, overwrite: true);
        }

        _committed = true;
    }

    /// <summary>Refused uploads (too large, disk full) leave nothing behind, in either mode.</summary>
    public async Task DiscardAsync()
    {
        await stream.DisposeAsync();
        if (temporary is not null)
        {
            return; // DisposeAsync deletes it
        }

        if (keepOnDiscard < 0)
        {
            File.Delete(target);
        }
        else
        {
            using var truncate = new FileStream(target, FileMode.Open, FileAccess.Write);
            truncate.SetLength(Math.Min(keepOnDiscard, truncate.Length));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await stream.DisposeAsync();
        if (!_committed && temporary is not null)
        {
            File.Delete(temporary); // nothing of a cut-off atomic upload remains
        }
    }
}
