using System.Runtime.InteropServices;

namespace Gateway.LoadGen;

/// <summary>Every libc call LoadGen makes, in one place (Linux).</summary>
internal static partial class Libc
{
    public const int RlimitNofile = 7; // Linux x86-64 and arm64
    public const int Eintr = 4;
    public const short PollIn = 0x1;
    public const short PollErr = 0x8;
    public const short PollHup = 0x10;
    public const short PollRdHup = 0x2000; // the peer has closed its side (Linux)
    private const int PrSetTimerslack = 29;

    [StructLayout(LayoutKind.Sequential)]
    public record struct RLimit(ulong Current, ulong Maximum);

    [StructLayout(LayoutKind.Sequential)]
    public record struct TimeSpec(long Seconds, long Nanoseconds);

    [StructLayout(LayoutKind.Sequential)]
    public record struct PollFd(int Descriptor, short Events, short ReturnedEvents);

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    public static partial int GetRLimit(int resource, out RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    public static partial int SetRLimit(int resource, in RLimit limit);

    [LibraryImport("libc", EntryPoint = "nanosleep", SetLastError = true)]
    public static partial int NanoSleep(in TimeSpec duration, nint remaining);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(Span<PollFd> descriptors, nuint count, int timeoutMilliseconds);

    /// <summary>How late the kernel may wake this thread from a sleep, to batch timers (default 50 µs).</summary>
    public static void SetTimerSlack(ulong nanoseconds) => _ = Prctl(PrSetTimerslack, (nuint)nanoseconds, 0, 0, 0);

    [LibraryImport("libc", EntryPoint = "prctl", SetLastError = true)]
    private static partial int Prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
