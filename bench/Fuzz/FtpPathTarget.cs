using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;
using Gateway.Protocols.Ftp;

namespace Gateway.Fuzz;

/// <summary>
/// Virtual paths and their mapping to the disk. The input is two arguments as a client sends them, split at the
/// first LF: a CWD's, then a command's (decoded as the server decodes a control line); the path is
/// <c>Resolve(Resolve("/", first), second)</c>, then <see cref="FtpFileStore.MapPath"/> and Stat map it under a
/// fixture root that holds directories, files and symlinks pointing inside, outside, in loops and nowhere.
/// </summary>
/// <remarks>
/// Fine: a normalised path; MapPath's null (it would leave the root); IOException or UnauthorizedAccessException
/// from the store (the session answers 550). Findings: any other exception; a path that is not absolute and
/// normalised or holds a "." or ".." segment; a mapped path outside the root — lexically, or once libc
/// realpath(3) resolves the part of it that exists — or one that goes through a symlink; a path through no
/// symlink mapped anywhere but root + path.
/// </remarks>
internal sealed partial class FtpPathTarget : IFuzzTarget
{
    private static readonly Lazy<Fixture> Files = new(Fixture.Create);

    private static readonly string[] SeedPaths =
    [
        "a/b", "/a/b\n../../etc/passwd", "in/../out/secret", "up/outside/secret", "a\\..\\..\\b", "./\u00fcn\u00efcode dir/../f",
        "loop/x", "//x//y/", "a\nback/back/f", "abs/../../out", "hop", "dangling", "dangling-out", "secret",
        "ping", "a\ntop/up/root/f", ".gateway-upload-x", "in\n..\n..", "a/./b/.",
    ];

    // The fixture's names and the characters that make paths move.
    private static readonly string[] Tokens =
        ["/", "..", ".", "\\", "in", "out", "up", "abs", "abs-out", "back", "top", "loop", "ping", "dangling", "secret", "hop", "f", "a/b", ".gateway-upload-"];

    public string Name => "ftp-path";

    public void Run(byte[] input)
    {
        var newline = Array.IndexOf(input, (byte)'\n');
        var cwdArgument = Argument(newline < 0 ? [] : input[..newline]);
        var argument = Argument(newline < 0 ? input : input[(newline + 1)..]);

        var cwd = FtpPath.Resolve(FtpPath.Root, cwdArgument);
        CheckNormalised(cwd, cwdArgument);
        var path = FtpPath.Resolve(cwd, argument);
        CheckNormalised(path, argument);
        if (FtpPath.Resolve(path, null) != path || FtpPath.Resolve(path, "") != path)
        {
            throw new FuzzFinding($"resolving nothing from {Show(path)} moves");
        }

        var parent = FtpPath.Parent(path);
        CheckNormalised(parent, path);
        if (path != FtpPath.Root && FtpPath.Resolve(parent, FtpPath.Name(path)) != path)
        {
            throw new FuzzFinding($"Parent/Name of {Show(path)} do not give it back");
        }

        CheckMapped(Files.Value, path);
    }

    /// <summary>The argument the server would take from a command line carrying these bytes.</summary>
    private static string Argument(byte[] bytes) =>
        FtpCommandParser.Parse(new ReadOnlySequence<byte>([.. "CWD "u8, .. bytes])).Argument;

    private static void CheckNormalised(string path, string from)
    {
        if (!path.StartsWith('/') || (path.Length > 1 && path.EndsWith('/')))
        {
            throw new FuzzFinding($"{Show(path)} (from {Show(from)}) is not absolute without a trailing slash");
        }

        if (FtpPath.Segments(path).Any(s => s is "." or ".." || s.Length == 0) || path.Contains("//", StringComparison.Ordinal))
        {
            throw new FuzzFinding($"{Show(path)} (from {Show(from)}) keeps a '.', '..' or empty segment");
        }

        if (FtpPath.Normalize(path) != path)
        {
            throw new FuzzFinding($"{Show(path)} (from {Show(from)}) normalises again to {Show(FtpPath.Normalize(path))}");
        }
    }

    private static void CheckMapped(Fixture files, string path)
    {
        string? physical;
        FtpEntry? entry;
        try
        {
            physical = files.Store.MapPath(path);
            entry = files.Store.Stat(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return; // the session answers 550
        }

        if (physical is null)
        {
            if (entry is not null)
            {
                throw new FuzzFinding($"{Show(path)} maps nowhere but Stat finds {entry}");
            }

            return;
        }

        var root = files.Store.RootPath;
        if (physical != root && !physical.StartsWith(root + "/", StringComparison.Ordinal))
        {
            throw new FuzzFinding($"{Show(path)} maps outside the root: {Show(physical)}");
        }

        if (physical.Contains('\0', StringComparison.Ordinal) || Path.GetFullPath(physical) != physical)
        {
            throw new FuzzFinding($"{Show(path)} maps to a path that is not canonical: {Show(physical)}");
        }

        // Independent of the store's own walk: what the kernel resolves the existing part of the path to.
        var existing = physical;
        string? real;
        while ((real = RealPath(existing)) is null && existing.Length > root.Length)
        {
            existing = Path.GetDirectoryName(existing)!;
        }

        if (real is null || (real != files.RealRoot && !real.StartsWith(files.RealRoot + "/", StringComparison.Ordinal)))
        {
            throw new FuzzFinding($"{Show(path)} maps to {Show(physical)}, whose existing part {Show(existing)} resolves outside the root: {Show(real ?? "(nothing)")}");
        }

        try
        {
            CheckNoLinks(root, path, physical);
        }
        catch (IOException)
        {
            // The oracle cannot look (a name too long for lstat, ...); the store answered without an error.
        }
    }

    private static void CheckNoLinks(string root, string path, string physical)
    {
        for (var prefix = physical; prefix.Length > root.Length; prefix = Path.GetDirectoryName(prefix)!)
        {
            if (File.ResolveLinkTarget(prefix, returnFinalTarget: false) is not null)
            {
                throw new FuzzFinding($"{Show(path)} maps to {Show(physical)}, which goes through the symlink {Show(prefix)}");
            }
        }

        // A path that meets no symlink on the way maps to itself under the root.
        var plain = root;
        foreach (var segment in FtpPath.Segments(path))
        {
            plain = Path.Join(plain, segment);
            if (File.ResolveLinkTarget(plain, returnFinalTarget: false) is not null)
            {
                return;
            }
        }

        if (plain != physical)
        {
            throw new FuzzFinding($"{Show(path)} meets no symlink but maps to {Show(physical)}, not {Show(plain)}");
        }
    }

    private static string Show(string text) =>
        "\"" + (text.Length <= 120 ? text : text[..120] + $"... ({text.Length} chars)").Replace("\0", "\\0", StringComparison.Ordinal) + "\"";

    private static string? RealPath(string path)
    {
        var resolved = RealPath(path, 0);
        if (resolved == 0)
        {
            return null;
        }

        try
        {
            return Marshal.PtrToStringUTF8(resolved);
        }
        finally
        {
            Free(resolved);
        }
    }

    [LibraryImport("libc", EntryPoint = "realpath", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint RealPath(string path, nint resolved);

    [LibraryImport("libc", EntryPoint = "free")]
    private static partial void Free(nint pointer);

    /// <summary>
    /// A root with directories, files and links of every kind, beside a directory outside it. Made once per
    /// process under the real temporary directory (so the root's own path has no symlink) and removed at exit.
    /// </summary>
    private sealed class Fixture
    {
        private Fixture(string top)
        {
            var root = Path.Join(top, "root");
            var outside = Path.Join(top, "outside");
            Directory.CreateDirectory(Path.Join(root, "a", "b"));
            Directory.CreateDirectory(outside);
            File.WriteAllText(Path.Join(root, "f"), "file");
            File.WriteAllText(Path.Join(root, "a", "f"), "file");
            File.WriteAllText(Path.Join(outside, "secret"), "outside");
            File.WriteAllText(Path.Join(root, FtpFileStore.UploadPrefix + "x"), "upload in progress");
            Link(root, "in", "a");
            Link(root, "abs", Path.Join(root, "a", "b"));
            Link(root, "a/back", "../a");
            Link(root, "a/top", "..");
            Link(root, "out", "../outside");
            Link(root, "abs-out", outside);
            Link(root, "up", "..");
            Link(root, "loop", "loop");
            Link(root, "ping", "pong");
            Link(root, "pong", "ping");
            Link(root, "dangling", "nowhere");
            Link(root, "dangling-out", "../outside/nothing");
            Link(root, "secret", "../outside/secret");
            Link(root, "hop", "in/back/../top/out");
            Store = new FtpFileStore(root);
            RealRoot = RealPath(root) ?? throw new InvalidOperationException($"realpath({root}) failed");
        }

        public FtpFileStore Store { get; }

        public string RealRoot { get; }

        public static Fixture Create()
        {
            var temporary = RealPath(Path.GetTempPath()) ?? "/tmp";
            // afl-fuzz ends its fork server's child with SIGKILL, which skips ProcessExit: clear what dead ones left.
            foreach (var stale in Directory.EnumerateDirectories(temporary, "gateway-fuzz-ftp-path-*"))
            {
                if (!int.TryParse(stale.AsSpan(stale.LastIndexOf('-') + 1), out var owner) || !Directory.Exists($"/proc/{owner}")
                    || owner == Environment.ProcessId)
                {
                    TryDelete(stale);
                }
            }

            var top = Path.Join(temporary, $"gateway-fuzz-ftp-path-{Environment.ProcessId}");

            AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(top);
            return new Fixture(top);
        }

        private static void TryDelete(string directory)
        {
            try
            {
                Directory.Delete(directory, recursive: true);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Best effort: a leftover fixture is a few bytes in the temporary directory.
            }
        }

        private static void Link(string root, string name, string target) => File.CreateSymbolicLink(Path.Join(root, name), target);
    }

    public IEnumerable<byte[]> Seeds() =>
        SeedPaths.Select(Encoding.UTF8.GetBytes)
            .Append([.. "caf"u8, 0xe9, .. "/x"u8])
            .Append([.. "a/"u8, 0x00, .. "/b"u8]);

    public IEnumerable<byte[]> Dictionary() =>
        Tokens.Select(Encoding.UTF8.GetBytes).Concat([[0x00], [(byte)'\n'], [0xff, 0xff], [0xc3, 0xa9], [0xe9]]);
}
