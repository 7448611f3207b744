using Gateway.Models.Native;

namespace Gateway.Models;

/// <summary>What a reactor asks to be told about one descriptor.</summary>
[Flags]
internal enum Interest
{
    None = 0,
    Read = 1,
    Write = 2,
}

/// <summary>One descriptor that is ready. <see cref="Hangup"/>: an error or hang-up the API reports whatever the interest.</summary>
internal readonly record struct ReadyEvent(int Token, bool Readable, bool Writable, bool Hangup);

/// <summary>
/// The one thing that differs between the epoll, poll and select reactors: how a thread waits for descriptors
/// to become ready. Called only from its reactor's thread. A token is the reactor's slot for the descriptor.
/// </summary>
internal interface IReadiness : IDisposable
{
    /// <summary>Edge-triggered: a ready descriptor is reported once per change, so it must be drained.</summary>
    bool EdgeTriggered { get; }

    /// <summary>False when this API cannot watch the descriptor (select: at or above FD_SETSIZE).</summary>
    bool TryAdd(FileDescriptor fd, int token, Interest interest);

    /// <summary>Changes what is watched (edge-triggered: everything is always watched, so nothing to do).</summary>
    void Change(FileDescriptor fd, int token, Interest interest);

    void Remove(FileDescriptor fd, int token);

    /// <summary>Waits up to the timeout (-1: no limit); fills <paramref name="ready"/> and returns how many.</summary>
    int Wait(Span<ReadyEvent> ready, int timeoutMilliseconds);
}

/// <summary>epoll(7), level- or edge-triggered.</summary>
internal sealed class EpollReadiness : IReadiness
{
    private readonly FileDescriptor _epoll = new((int)Libc.EpollCreate().ThrowIfFailed("epoll_create1"));
    private Libc.EpollEvent[] _events = new Libc.EpollEvent[256];

    public EpollReadiness(bool edgeTriggered) => EdgeTriggered = edgeTriggered;

    public bool EdgeTriggered { get; }

    public bool TryAdd(FileDescriptor fd, int token, Interest interest)
    {
        Libc.EpollControl(_epoll, Libc.EpollCtlAdd, fd, Events(interest), (ulong)token).ThrowIfFailed("epoll_ctl(ADD)");
        return true;
    }

    public void Change(FileDescriptor fd, int token, Interest interest)
    {
        if (!EdgeTriggered)
        {
            Libc.EpollControl(_epoll, Libc.EpollCtlMod, fd, Events(interest), (ulong)token).ThrowIfFailed("epoll_ctl(MOD)");
        }
    }

    public void Remove(FileDescriptor fd, int token) => _ = Libc.EpollControl(_epoll, Libc.EpollCtlDel, fd, 0, 0);

    public int Wait(Span<ReadyEvent> ready, int timeoutMilliseconds)
    {
        if (_events.Length < ready.Length)
        {
            _events = new Libc.EpollEvent[ready.Length];
        }

        var result = Libc.EpollWait(_epoll, _events.AsSpan(0, ready.Length), timeoutMilliseconds);
        if (!result.Ok)
        {
            return result.Error == Errno.Interrupted ? 0 : throw result.ToException("epoll_wait");
        }

        for (var i = 0; i < (int)result.Value; i++)
        {
            var events = _events[i].Events;
            var hangup = (events & (Libc.EpollErr | Libc.EpollHup)) != 0;
            ready[i] = new ReadyEvent((int)_events[i].Data,
                (events & (Libc.EpollIn | Libc.EpollRdHup | Libc.EpollPri)) != 0 || hangup,
                (events & Libc.EpollOut) != 0 || hangup,
                hangup);
        }

        return (int)result.Value;
    }

    public void Dispose() => _epoll.Dispose();

    private uint Events(Interest interest)
    {
        var events = ((interest & Interest.Read) != 0 ? Libc.EpollIn | Libc.EpollRdHup : 0) | ((interest & Interest.Write) != 0 ? Libc.EpollOut : 0);
        return EdgeTriggered ? events | Libc.EpollEt : events;
    }
}

/// <summary>poll(2): one pollfd per descriptor, the whole array passed on every wait.</summary>
internal sealed class PollReadiness : IReadiness
{
    private Libc.PollFd[] _fds = new Libc.PollFd[64];
    private int[] _tokens = new int[64];
    private int[] _slotOfToken = new int[64];
    private int _count;

    public bool EdgeTriggered => false;

    public bool TryAdd(FileDescriptor fd, int token, Interest interest)
    {
        if (_count == _fds.Length)
        {
            Array.Resize(ref _fds, _count * 2);
            Array.Resize(ref _tokens, _count * 2);
        }

        if (token >= _slotOfToken.Length)
        {
            Array.Resize(ref _slotOfToken, Math.Max(token + 1, _slotOfToken.Length * 2));
        }

        _fds[_count] = new Libc.PollFd { Fd = fd.Number, Events = Events(interest) };
        _tokens[_count] = token;
        _slotOfToken[token] = _count++;
        return true;
    }

    public void Change(FileDescriptor fd, int token, Interest interest) => _fds[_slotOfToken[token]].Events = Events(interest);

    public void Remove(FileDescriptor fd, int token)
    {
        var slot = _slotOfToken[token];
        var last = --_count;
        _fds[slot] = _fds[last];
        _tokens[slot] = _tokens[last];
        _slotOfToken[_tokens[slot]] = slot;
    }

    public int Wait(Span<ReadyEvent> ready, int timeoutMilliseconds)
    {
        var result = Libc.Poll(_fds.AsSpan(0, _count), timeoutMilliseconds);
        if (!result.Ok)
        {
            return result.Error == Errno.Interrupted ? 0 : throw result.ToException("poll");
        }

        var found = 0;
        for (var i = 0; i < _count && found < ready.Length && found < result.Value; i++)
        {
            var revents = _fds[i].Revents;
            if (revents == 0)
            {
                continue;
            }

            var hangup = (revents & (Libc.PollErr | Libc.PollHup | Libc.PollNval)) != 0;
            ready[found++] = new ReadyEvent(_tokens[i], (revents & (Libc.PollIn | Libc.PollRdHup)) != 0 || hangup,
                (revents & Libc.PollOut) != 0 || hangup, hangup);
        }

        return found;
    }

    public void Dispose()
    {
    }

    private static short Events(Interest interest) =>
        (short)(((interest & Interest.Read) != 0 ? Libc.PollIn | Libc.PollRdHup : 0) | ((interest & Interest.Write) != 0 ? Libc.PollOut : 0));
}

/// <summary>
/// select(2): two bit sets rebuilt for every wait, then every watched descriptor tested. The sets hold
/// descriptors below FD_SETSIZE only; <see cref="TryAdd"/> refuses the others rather than write past a set.
/// </summary>
internal sealed class SelectReadiness : IReadiness
{
    private int[] _fds = new int[64];
    private int[] _tokens = new int[64];
    private Interest[] _interests = new Interest[64];
    private int[] _slotOfToken = new int[64];
    private int _count;

    public bool EdgeTriggered => false;

    public bool TryAdd(FileDescriptor fd, int token, Interest interest)
    {
        if (fd.Number >= Libc.FdSetSize)
        {
            return false;
        }

        if (_count == _fds.Length)
        {
            Array.Resize(ref _fds, _count * 2);
            Array.Resize(ref _tokens, _count * 2);
            Array.Resize(ref _interests, _count * 2);
        }

        if (token >= _slotOfToken.Length)
        {
            Array.Resize(ref _slotOfToken, Math.Max(token + 1, _slotOfToken.Length * 2));
        }

        _fds[_count] = fd.Number;
        _tokens[_count] = token;
        _interests[_count] = interest;
        _slotOfToken[token] = _count++;
        return true;
    }

    public void Change(FileDescriptor fd, int token, Interest interest) => _interests[_slotOfToken[token]] = interest;

    public void Remove(FileDescriptor fd, int token)
    {
        var slot = _slotOfToken[token];
        var last = --_count;
        _fds[slot] = _fds[last];
        _tokens[slot] = _tokens[last];
        _interests[slot] = _interests[last];
        _slotOfToken[_tokens[slot]] = slot;
    }

    public unsafe int Wait(Span<ReadyEvent> ready, int timeoutMilliseconds)
    {
        Libc.FdSet read = default, write = default;
        var highest = -1;
        for (var i = 0; i < _count; i++)
        {
            if ((_interests[i] & Interest.Read) != 0)
            {
                read.Add(_fds[i]);
            }

            if ((_interests[i] & Interest.Write) != 0)
            {
                write.Add(_fds[i]);
            }

            highest = Math.Max(highest, _fds[i]);
        }

        var result = Libc.Select(highest + 1, &read, &write, timeoutMilliseconds);
        if (!result.Ok)
        {
            return result.Error == Errno.Interrupted ? 0 : throw result.ToException("select");
        }

        var found = 0;
        for (var i = 0; i < _count && found < ready.Length && result.Value > 0; i++)
        {
            bool readable = read.Contains(_fds[i]), writable = write.Contains(_fds[i]);
            if (readable || writable)
            {
                ready[found++] = new ReadyEvent(_tokens[i], readable, writable, Hangup: false);
            }
        }

        return found;
    }

    public void Dispose()
    {
    }
}
