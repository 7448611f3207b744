using System.Globalization;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Gateway.Protocols.Ftp;

/// <summary>A path that names something other than a regular file (a FIFO, a device, a socket): never opened for a transfer.</summary>
public sealed class NotARegularFileException(string path) : IOException($"{path} is not a regular file");

/// <summary>
/// Opens files for transfers, and only regular ones. An open(2) of a FIFO blocks until its other end appears, and
/// a FIFO or a device has no length and no end; so the path is first opened non-blocking and that descriptor's
/// type checked (statx on the descriptor: nothing can be swapped in between), and only then is the FileStream
/// opened, through <c>/proc/self/fd</c>, on that very inode — with .NET's own sharing (readers share, a writer is
/// alone) and options.
/// </summary>
internal static partial class RegularFile
{
    private const int ReadOnly = 0x0, WriteOnly = 0x1, Create = 0x40, NoControllingTerminal = 0x100, NonBlocking = 0x800, CloseOnExec = 0x80000;
    private const int EmptyPath = 0x1000, StatxType = 0x1;
    private const ushort TypeMask = 0xF000, RegularType = 0x8000, DirectoryType = 0x4000;
    private const int CurrentDirectory = -100; // AT_FDCWD
    private const int NoSuchFile = 2, NoDevice = 6, AccessDenied = 13, PermissionDenied = 1, NotADirectory = 20, IsADirectory = 21;

    /// <summary>Opens a regular file to read; throws <see cref="NotARegularFileException"/> for anything else.</summary>
    public static FileStream OpenRead(string path)
    {
        using var checkedFile = OpenChecked(path, ReadOnly);
        return new FileStream(ProcPath(checkedFile), FileMode.Open, FileAccess.Read, FileShare.Read, 1,
            FileOptions.Asynchronous | FileOptions.SequentialScan);
    }

    /// <summary>Opens (creating it if missing) a regular file to write, alone; throws <see cref="NotARegularFileException"/> for anything else.</summary>
    public static FileStream OpenWrite(string path)
    {
        using var checkedFile = OpenChecked(path, WriteOnly | Create);
        return new FileStream(ProcPath(checkedFile), FileMode.Open, FileAccess.Write, FileShare.None, 0, FileOptions.None);
    }

    /// <summary>
    /// Whether something other than a regular file or a directory is at <paramref name="path"/> (links followed): a
    /// FIFO, a device or a socket, which an upload must not replace or write into. False when nothing is there.
    /// </summary>
    public static bool IsSpecial(string path)
    {
        Span<byte> status = stackalloc byte[256];
        if (!OperatingSystem.IsLinux() || StatxPath(CurrentDirectory, path, 0, StatxType, status) != 0)
        {
            return false;
        }

        var type = BitConverter.ToUInt16(status[28..]) & TypeMask;
        return type != RegularType && type != DirectoryType;
    }

    private static string ProcPath(SafeFileHandle file) =>
        string.Create(CultureInfo.InvariantCulture, $"/proc/self/fd/{file.DangerousGetHandle()}");

    private static SafeFileHandle OpenChecked(string path, int access)
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new PlatformNotSupportedException("FTP transfers open files through Linux system calls");
        }

        var descriptor = OpenCall(path, access | NonBlocking | CloseOnExec | NoControllingTerminal, 0x1B6 /* 0666, less the umask */);
        if (descriptor < 0)
        {
            var error = Marshal.GetLastPInvokeError();
            throw error switch
            {
                NoDevice => new NotARegularFileException(path), // a FIFO opened to write with nobody reading it
                NoSuchFile or NotADirectory => new FileNotFoundException($"{path} does not exist", path),
                AccessDenied or PermissionDenied or IsADirectory => new UnauthorizedAccessException($"{path}: access denied"),
                _ => new IOException($"{path}: {Marshal.GetPInvokeErrorMessage(error)}", error),
            };
        }

        var handle = new SafeFileHandle(descriptor, ownsHandle: true);
        Span<byte> status = stackalloc byte[256]; // struct statx; stx_mode is the u16 at offset 28 on every architecture
        if (Statx(handle, "", EmptyPath, StatxType, status) != 0 || (BitConverter.ToUInt16(status[28..]) & TypeMask) != RegularType)
        {
            handle.Dispose();
            throw new NotARegularFileException(path);
        }

        return handle;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int OpenCall(string path, int flags, int mode);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Statx(SafeFileHandle directory, string path, int flags, int mask, Span<byte> status);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int StatxPath(int directory, string path, int flags, int mask, Span<byte> status);
}
