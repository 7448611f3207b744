namespace Gateway.Models.Native;

/// <summary>
/// What a system call returned: its value, or the errno it failed with. Every call in <see cref="Libc"/>
/// reports through this one type, so callers branch on <see cref="Error"/> instead of on -1 and errno.
/// </summary>
internal readonly record struct NativeResult(long Value, Errno Error)
{
    public bool Ok => Error == Errno.None;

    public bool WouldBlock => Error is Errno.WouldBlock;

    public static NativeResult From(long value) =>
        value >= 0 ? new(value, Errno.None) : new(value, (Errno)System.Runtime.InteropServices.Marshal.GetLastPInvokeError());

    /// <summary>The failure as an exception, naming the call.</summary>
    public NativeException ToException(string call) => new(call, Error);

    /// <summary>Returns the value, or throws when the call failed.</summary>
    public long ThrowIfFailed(string call) => Ok ? Value : throw ToException(call);
}

/// <summary>The errno values the models act on (Linux numbering); anything else is carried as its number.</summary>
internal enum Errno
{
    None = 0,
    Interrupted = 4,      // EINTR
    BadDescriptor = 9,    // EBADF
    WouldBlock = 11,      // EAGAIN / EWOULDBLOCK
    TooManyFiles = 24,    // EMFILE (process)
    TooManyFilesSystem = 23, // ENFILE
    BrokenPipe = 32,      // EPIPE
    AddressFamilyNotSupported = 97, // EAFNOSUPPORT
    AddressInUse = 98,    // EADDRINUSE
    AddressNotAvailable = 99, // EADDRNOTAVAIL
    ConnectionAborted = 103, // ECONNABORTED
    ConnectionReset = 104, // ECONNRESET
    NoBuffers = 105,      // ENOBUFS
    NotConnected = 107,   // ENOTCONN
    TimedOut = 110,       // ETIMEDOUT
}

internal sealed class NativeException(string call, Errno error)
    : IOException($"{call} failed: {Describe(error)}", (int)error)
{
    public Errno Error { get; } = error;

    private static string Describe(Errno error) =>
        $"{System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage((int)error)} (errno {(int)error})";
}
