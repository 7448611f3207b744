using Microsoft.Win32.SafeHandles;

namespace Gateway.Models.Native;

/// <summary>A descriptor the models own (socket, epoll instance, eventfd): closed exactly once, when released.</summary>
internal sealed class FileDescriptor : SafeHandleMinusOneIsInvalid
{
    public FileDescriptor()
        : base(ownsHandle: true)
    {
    }

    public FileDescriptor(int fd)
        : base(ownsHandle: true) => SetHandle(fd);

    /// <summary>The number itself, for the readiness sets (select's bit, poll's slot, epoll's key).</summary>
    public int Number => (int)handle;

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}
