using System.Runtime.InteropServices;

namespace Gateway.Models.Native;

/// <summary>
/// Every system call the in-process models make, in one place: <c>[LibraryImport]</c> into libc, descriptors
/// passed as <see cref="FileDescriptor"/> (so a descriptor is never closed under a call in flight), results as
/// <see cref="NativeResult"/>. Linux x86-64/arm64 layouts; the models are Linux-only and say so at start.
/// </summary>
internal static unsafe partial class Libc
{
    public const int AfInet = 2, AfInet6 = 10;
    public const int SockStream = 1, SockNonBlock = 0x800, SockCloExec = 0x80000;
    public const int SolSocket = 1, IpProtoTcp = 6, IpProtoIpv6 = 41;
    public const int SoReuseAddr = 2, SoKeepAlive = 9, SoOobInline = 10, SoReusePort = 15, SoRcvLowAt = 18;
    public const int TcpNoDelay = 1, Ipv6V6Only = 26;
    public const int MsgPeek = 0x2, MsgDontWait = 0x40, MsgNoSignal = 0x4000;
    public const int ShutRd = 0, ShutWr = 1, ShutRdWr = 2;
    public const int FGetFl = 3, FSetFl = 4, ONonBlock = 0x800;

    public const int EpollCloExec = 0x80000;
    public const int EpollCtlAdd = 1, EpollCtlDel = 2, EpollCtlMod = 3;
    public const uint EpollIn = 0x001, EpollPri = 0x002, EpollOut = 0x004, EpollErr = 0x008, EpollHup = 0x010, EpollRdHup = 0x2000, EpollEt = 1u << 31;

    public const short PollIn = 0x001, PollOut = 0x004, PollErr = 0x008, PollHup = 0x010, PollNval = 0x020, PollRdHup = 0x2000;

    public const int EfdCloExec = 0x80000, EfdNonBlock = 0x800;

    /// <summary>SCM_RIGHTS: descriptors passed over a Unix socket; MSG_CTRUNC: some did not fit.</summary>
    public const int ScmRights = 1, MsgCtrunc = 0x8;

    /// <summary>SO_RCVTIMEO: a blocking accept(2) gives up (EAGAIN) after this long.</summary>
    public const int SoRcvTimeo = 20;

    /// <summary>The most descriptors one message carries (a listener's sockets for one worker).</summary>
    public const int MaxPassedDescriptors = 64;

    /// <summary>select(2)'s fixed set size: a descriptor at or above it cannot be watched by select.</summary>
    public const int FdSetSize = 1024;

    /// <summary>RLIMIT_NPROC: the tasks (processes and threads) the process's real user may have; RLIM_INFINITY: none.</summary>
    public const int RlimitNproc = 6;
    public const ulong RlimInfinity = ulong.MaxValue;

    /// <summary>getrlimit(2)'s struct rlimit.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ResourceLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    /// <summary>One epoll_event: packed on x86-64 (12 bytes), naturally aligned elsewhere.</summary>
    [StructLayout(LayoutKind.Sequential, Pack = 4)]
    public struct EpollEvent
    {
        public uint Events;
        public ulong Data;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct IoVector
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>select(2)'s fd_set: 1024 bits.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FdSet
    {
        private fixed ulong _bits[FdSetSize / 64];

        public void Clear()
        {
            for (var i = 0; i < FdSetSize / 64; i++)
            {
                _bits[i] = 0;
            }
        }

        public void Add(int fd) => _bits[fd >> 6] |= 1UL << (fd & 63);

        public readonly bool Contains(int fd) => (_bits[fd >> 6] & (1UL << (fd & 63))) != 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    public struct TimeVal
    {
        public long Seconds;
        public long Microseconds;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MessageHeader
    {
        public void* Name;
        public uint NameLength;
        public IoVector* Vectors;
        public nuint VectorCount;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    public static NativeResult Socket(int domain, int type, int protocol) => NativeResult.From(SocketCall(domain, type, protocol));

    public static NativeResult SetOption(FileDescriptor socket, int level, int name, int value) =>
        NativeResult.From(SetSockOpt(socket, level, name, &value, sizeof(int)));

    public static NativeResult Bind(FileDescriptor socket, ReadOnlySpan<byte> address)
    {
        fixed (byte* a = address)
        {
            return NativeResult.From(BindCall(socket, a, (uint)address.Length));
        }
    }

    public static NativeResult Listen(FileDescriptor socket, int backlog) => NativeResult.From(ListenCall(socket, backlog));

    /// <summary>accept4 with the peer's address written to <paramref name="address"/>; the result is the new descriptor.</summary>
    public static NativeResult Accept(FileDescriptor socket, Span<byte> address, out int addressLength, int flags)
    {
        var length = (uint)address.Length;
        fixed (byte* a = address)
        {
            var result = NativeResult.From(Accept4(socket, a, &length, flags));
            addressLength = (int)length;
            return result;
        }
    }

    public static NativeResult SocketName(FileDescriptor socket, Span<byte> address, out int addressLength) =>
        Name(socket, address, out addressLength, peer: false);

    public static NativeResult PeerName(FileDescriptor socket, Span<byte> address, out int addressLength) =>
        Name(socket, address, out addressLength, peer: true);

    public static NativeResult Receive(FileDescriptor socket, Span<byte> buffer, int flags)
    {
        fixed (byte* b = buffer)
        {
            return NativeResult.From(Recv(socket, b, (nuint)buffer.Length, flags));
        }
    }

    public static NativeResult Send(FileDescriptor socket, ReadOnlySpan<byte> buffer, int flags)
    {
        fixed (byte* b = buffer)
        {
            return NativeResult.From(SendCall(socket, b, (nuint)buffer.Length, flags | MsgNoSignal));
        }
    }

    /// <summary>sendmsg over several pinned buffers (writev with MSG_NOSIGNAL).</summary>
    public static NativeResult SendVector(FileDescriptor socket, IoVector* vectors, int count, int flags)
    {
        var header = new MessageHeader { Vectors = vectors, VectorCount = (nuint)count };
        return NativeResult.From(SendMsg(socket, &header, flags | MsgNoSignal));
    }

    /// <summary>
    /// sendmsg(2) of <paramref name="data"/> with <paramref name="descriptors"/> attached (SCM_RIGHTS): the
    /// receiver gets its own copies of them, which share the open sockets with ours.
    /// </summary>
    public static NativeResult SendWithDescriptors(SafeHandle socket, ReadOnlySpan<byte> data, ReadOnlySpan<int> descriptors)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(descriptors.Length, MaxPassedDescriptors);
        var control = stackalloc byte[ControlSpace(MaxPassedDescriptors)];
        var controlLength = WriteRights(control, descriptors);
        var added = false;
        socket.DangerousAddRef(ref added);
        try
        {
            fixed (byte* bytes = data)
            {
                var vector = new IoVector { Base = bytes, Length = (nuint)data.Length };
                var header = new MessageHeader { Vectors = &vector, VectorCount = 1, Control = descriptors.IsEmpty ? null : control, ControlLength = (nuint)controlLength };
                return NativeResult.From(SendMsgRaw((int)socket.DangerousGetHandle(), &header, MsgNoSignal));
            }
        }
        finally
        {
            socket.DangerousRelease();
        }
    }

    /// <summary>
    /// recvmsg(2) into <paramref name="buffer"/>, collecting descriptors passed with those bytes into
    /// <paramref name="descriptors"/>. They arrive without close-on-exec on purpose: .NET will not shut down
    /// (for everyone) a socket without it when it closes its copy, as such a socket may be shared with other
    /// processes — which these are.
    /// </summary>
    public static NativeResult ReceiveWithDescriptors(SafeHandle socket, Span<byte> buffer, Span<int> descriptors, out int descriptorCount)
    {
        descriptorCount = 0;
        var control = stackalloc byte[ControlSpace(MaxPassedDescriptors)];
        var added = false;
        socket.DangerousAddRef(ref added);
        try
        {
            fixed (byte* bytes = buffer)
            {
                var vector = new IoVector { Base = bytes, Length = (nuint)buffer.Length };
                var header = new MessageHeader { Vectors = &vector, VectorCount = 1, Control = control, ControlLength = (nuint)ControlSpace(MaxPassedDescriptors) };
                var result = NativeResult.From(RecvMsgRaw((int)socket.DangerousGetHandle(), &header, 0));
                if (result.Ok && header.ControlLength >= (nuint)ControlHeaderLength)
                {
                    var length = (int)*(nuint*)control;
                    var level = *(int*)(control + sizeof(nuint));
                    var type = *(int*)(control + sizeof(nuint) + sizeof(int));
                    if (level == SolSocket && type == ScmRights)
                    {
                        var passed = new ReadOnlySpan<int>(control + ControlHeaderLength, (length - ControlHeaderLength) / sizeof(int));
                        passed[..Math.Min(passed.Length, descriptors.Length)].CopyTo(descriptors);
                        descriptorCount = passed.Length;
                    }
                }

                if (result.Ok && (header.Flags & MsgCtrunc) != 0)
                {
                    throw new IOException("recvmsg: the passed descriptors did not fit (MSG_CTRUNC)");
                }

                return result;
            }
        }
        finally
        {
            socket.DangerousRelease();
        }
    }

    /// <summary>cmsghdr: length (size_t), level, type; then the data, the whole padded to size_t.</summary>
    private static int ControlHeaderLength => sizeof(nuint) + (2 * sizeof(int));

    private static int ControlSpace(int descriptors) =>
        ControlHeaderLength + (((descriptors * sizeof(int)) + sizeof(nuint) - 1) & ~(sizeof(nuint) - 1));

    private static int WriteRights(byte* control, ReadOnlySpan<int> descriptors)
    {
        *(nuint*)control = (nuint)(ControlHeaderLength + (descriptors.Length * sizeof(int)));
        *(int*)(control + sizeof(nuint)) = SolSocket;
        *(int*)(control + sizeof(nuint) + sizeof(int)) = ScmRights;
        descriptors.CopyTo(new Span<int>(control + ControlHeaderLength, descriptors.Length));
        return ControlSpace(descriptors.Length);
    }

    /// <summary>setsockopt of a struct timeval (SO_RCVTIMEO, SO_SNDTIMEO).</summary>
    public static NativeResult SetTimeout(FileDescriptor socket, int name, TimeSpan timeout)
    {
        var value = new TimeVal { Seconds = (long)timeout.TotalSeconds, Microseconds = timeout.Microseconds + (timeout.Milliseconds * 1000) };
        return NativeResult.From(SetSockOpt(socket, SolSocket, name, &value, (uint)sizeof(TimeVal)));
    }

    public static NativeResult Shutdown(FileDescriptor socket, int how) => NativeResult.From(ShutdownCall(socket, how));

    public static NativeResult SetNonBlocking(FileDescriptor fd, bool nonBlocking)
    {
        var flags = NativeResult.From(Fcntl(fd, FGetFl, 0));
        if (!flags.Ok)
        {
            return flags;
        }

        var wanted = nonBlocking ? (int)flags.Value | ONonBlock : (int)flags.Value & ~ONonBlock;
        return NativeResult.From(Fcntl(fd, FSetFl, wanted));
    }

    public static NativeResult EpollCreate() => NativeResult.From(EpollCreate1(EpollCloExec));

    public static NativeResult EpollControl(FileDescriptor epoll, int operation, FileDescriptor fd, uint events, ulong data)
    {
        var e = new EpollEvent { Events = events, Data = data };
        return NativeResult.From(EpollCtl(epoll, operation, fd, &e));
    }

    public static NativeResult EpollWait(FileDescriptor epoll, Span<EpollEvent> events, int timeoutMilliseconds)
    {
        fixed (EpollEvent* e = events)
        {
            return NativeResult.From(EpollWaitCall(epoll, e, events.Length, timeoutMilliseconds));
        }
    }

    public static NativeResult Poll(Span<PollFd> fds, int timeoutMilliseconds)
    {
        fixed (PollFd* f = fds)
        {
            return NativeResult.From(PollCall(f, (nuint)fds.Length, timeoutMilliseconds));
        }
    }

    public static NativeResult Select(int count, FdSet* read, FdSet* write, int timeoutMilliseconds)
    {
        var timeout = new TimeVal { Seconds = timeoutMilliseconds / 1000, Microseconds = timeoutMilliseconds % 1000 * 1000 };
        return NativeResult.From(SelectCall(count, read, write, null, timeoutMilliseconds < 0 ? null : &timeout));
    }

    public static NativeResult EventFd() => NativeResult.From(EventFdCall(0, EfdCloExec | EfdNonBlock));

    /// <summary>Adds one to an eventfd's counter (wakes whoever waits on it).</summary>
    public static NativeResult Signal(FileDescriptor eventFd)
    {
        ulong one = 1;
        return NativeResult.From(Write(eventFd, &one, sizeof(ulong)));
    }

    /// <summary>Resets an eventfd's counter to zero.</summary>
    public static NativeResult Drain(FileDescriptor eventFd)
    {
        ulong count;
        return NativeResult.From(Read(eventFd, &count, sizeof(ulong)));
    }

    public static NativeResult GetResourceLimit(int resource, out ResourceLimit limit)
    {
        ResourceLimit value;
        var result = NativeResult.From(GetRLimit(resource, &value));
        limit = value;
        return result;
    }

    /// <summary>geteuid(2): 0 for root, whom RLIMIT_NPROC does not bind.</summary>
    public static uint EffectiveUserId() => GetEUid();

    private static NativeResult Name(FileDescriptor socket, Span<byte> address, out int addressLength, bool peer)
    {
        var length = (uint)address.Length;
        fixed (byte* a = address)
        {
            var result = NativeResult.From(peer ? GetPeerName(socket, a, &length) : GetSockName(socket, a, &length));
            addressLength = (int)length;
            return result;
        }
    }

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    internal static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, ResourceLimit* limit);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEUid();

    [LibraryImport("libc", EntryPoint = "socket", SetLastError = true)]
    private static partial int SocketCall(int domain, int type, int protocol);

    [LibraryImport("libc", EntryPoint = "setsockopt", SetLastError = true)]
    private static partial int SetSockOpt(FileDescriptor socket, int level, int name, void* value, uint length);

    [LibraryImport("libc", EntryPoint = "bind", SetLastError = true)]
    private static partial int BindCall(FileDescriptor socket, byte* address, uint length);

    [LibraryImport("libc", EntryPoint = "listen", SetLastError = true)]
    private static partial int ListenCall(FileDescriptor socket, int backlog);

    [LibraryImport("libc", EntryPoint = "accept4", SetLastError = true)]
    private static partial int Accept4(FileDescriptor socket, byte* address, uint* length, int flags);

    [LibraryImport("libc", EntryPoint = "getsockname", SetLastError = true)]
    private static partial int GetSockName(FileDescriptor socket, byte* address, uint* length);

    [LibraryImport("libc", EntryPoint = "getpeername", SetLastError = true)]
    private static partial int GetPeerName(FileDescriptor socket, byte* address, uint* length);

    [LibraryImport("libc", EntryPoint = "recv", SetLastError = true)]
    private static partial nint Recv(FileDescriptor socket, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "send", SetLastError = true)]
    private static partial nint SendCall(FileDescriptor socket, byte* buffer, nuint length, int flags);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(FileDescriptor socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsgRaw(int socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "recvmsg", SetLastError = true)]
    private static partial nint RecvMsgRaw(int socket, MessageHeader* message, int flags);

    [LibraryImport("libc", EntryPoint = "shutdown", SetLastError = true)]
    private static partial int ShutdownCall(FileDescriptor socket, int how);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(FileDescriptor fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    private static partial int EpollCreate1(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int EpollCtl(FileDescriptor epoll, int operation, FileDescriptor fd, EpollEvent* e);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    private static partial int EpollWaitCall(FileDescriptor epoll, EpollEvent* events, int maxEvents, int timeout);

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    private static partial int PollCall(PollFd* fds, nuint count, int timeout);

    [LibraryImport("libc", EntryPoint = "select", SetLastError = true)]
    private static partial int SelectCall(int count, FdSet* read, FdSet* write, FdSet* except, TimeVal* timeout);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    private static partial int EventFdCall(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    private static partial nint Write(FileDescriptor fd, void* buffer, nuint length);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    private static partial nint Read(FileDescriptor fd, void* buffer, nuint length);
}
