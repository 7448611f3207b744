namespace Gateway.Protocols.Framing;

/// <summary>
/// The one clock of every <see cref="IdleTimeout"/> in the process: four times a second it looks at each armed
/// deadline and expires those that have passed. A connection's idle timeout then costs a slot in a list and a
/// write per batch, not a timer of its own (whose re-arm takes the runtime's timer lock on every batch). The
/// timer runs only while some timeout exists.
/// </summary>
internal static class IdleHeartbeat
{
    public static readonly TimeSpan Period = TimeSpan.FromMilliseconds(250);

    private static readonly Lock s_gate = new();
    private static IdleTimeout?[] s_timeouts = new IdleTimeout?[64];
    private static int s_count;
    private static Timer? s_timer;

    public static void Add(IdleTimeout timeout)
    {
        lock (s_gate)
        {
            if (s_count == s_timeouts.Length)
            {
                Array.Resize(ref s_timeouts, s_count * 2);
            }

            timeout.Slot = s_count;
            s_timeouts[s_count++] = timeout;
            s_timer ??= new Timer(static _ => Beat(), null, Period, Period);
        }
    }

    public static void Remove(IdleTimeout timeout)
    {
        lock (s_gate)
        {
            var slot = timeout.Slot;
            if (slot < 0)
            {
                return;
            }

            var last = s_timeouts[--s_count]!;
            s_timeouts[slot] = last;
            last.Slot = slot;
            s_timeouts[s_count] = null;
            timeout.Slot = -1;
            if (s_count == 0)
            {
                s_timer?.Dispose();
                s_timer = null;
            }
            else if (s_count < s_timeouts.Length / 4 && s_timeouts.Length > 64)
            {
                Array.Resize(ref s_timeouts, s_timeouts.Length / 2); // a flood of connections gone: give its room back
            }
        }
    }

    private static void Beat()
    {
        var now = Environment.TickCount64;
        List<IdleTimeout>? due = null;
        lock (s_gate)
        {
            for (var i = 0; i < s_count; i++)
            {
                if (s_timeouts[i]!.TakeIfDue(now))
                {
                    (due ??= []).Add(s_timeouts[i]!);
                }
            }
        }

        // Outside the lock and one work item each: cancelling resumes that handler, which may take a while.
        foreach (var timeout in due ?? [])
        {
            ThreadPool.UnsafeQueueUserWorkItem(static t => t.Expire(), timeout, preferLocal: false);
        }
    }
}
