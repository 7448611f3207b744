using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Gateway.Protocols.Ftp;

/// <summary>Starts asynchronous writeback of a file range (Linux); a no-op elsewhere or when refused.</summary>
internal static partial class FileWriteback
{
    private const uint SyncFileRangeWrite = 2; // SYNC_FILE_RANGE_WRITE: start writing dirty pages, do not wait

    public static void Start(SafeFileHandle file, long offset, long count)
    {
        if (OperatingSystem.IsLinux())
        {
            _ = SyncFileRange(file, offset, count, SyncFileRangeWrite); // advisory: the fsync at commit is what counts
        }
    }

    [LibraryImport("libc", EntryPoint = "sync_file_range", SetLastError = true)]
    private static partial int SyncFileRange(SafeFileHandle file, long offset, long count, uint flags);
}
