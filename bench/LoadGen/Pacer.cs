using System.Diagnostics;
using System.Threading.Channels;

namespace Gateway.LoadGen;

/// <summary>
/// Wakes each open-loop sender when its next request falls due. .NET timers (Task.Delay, PeriodicTimer) run on
/// the kernel's coarse clock: on a 250 Hz Linux, Task.Delay(1) takes about 4 ms, and the lateness would count
/// as server latency (p50 2.4 ms at 5000/s on loopback, against 0.1 ms with this pacer). One thread walks
/// the whole schedule instead, sleeping in nanosleep with the timer slack turned down, and wakes the senders
/// whose requests are due; the sender's code runs on this thread as it is woken, so a request leaves within
/// microseconds of its time, and a send that cannot complete at once continues without holding this thread up.
/// </summary>
internal sealed class Pacer
{
    private readonly RunClock _clock;
    private readonly int _connections;
    private readonly double _ticksPerRequest;
    private readonly Channel<bool>[] _wake;
    private readonly Thread _thread;

    public Pacer(RunClock clock, double rate, int connections)
    {
        _clock = clock;
        _connections = connections;
        _ticksPerRequest = Stopwatch.Frequency / rate;
        _wake = Enumerable.Range(0, connections)
            .Select(_ => Channel.CreateBounded<bool>(new BoundedChannelOptions(1)
            {
                FullMode = BoundedChannelFullMode.DropWrite, // one pending wake-up is enough: the sender sends all that is due
                SingleReader = true,
                SingleWriter = false, // the pacer, and a stopping receiver
                AllowSynchronousContinuations = true,
            }))
            .ToArray();
        _thread = new Thread(Run) { IsBackground = true, Name = "LoadGen pacer" };
    }

    /// <summary>When request <paramref name="k"/> of connection <paramref name="index"/> is due: <c>start + (k*C + i)/rate</c>.</summary>
    public long ScheduledAt(long k, int index) => ScheduledAt(k * _connections + index);

    /// <summary>
    /// Completes when the pacer next finds a request of <paramref name="index"/> due, or at once if one already was,
    /// or when something calls <see cref="Wake"/>; the pacer's last wake-up comes after the end of the schedule.
    /// </summary>
    public ValueTask<bool> WaitAsync(int index) => _wake[index].Reader.ReadAsync(CancellationToken.None);

    /// <summary>Wakes the sender of connection <paramref name="index"/> out of turn, e.g. to see that it must stop.</summary>
    public void Wake(int index) => _wake[index].Writer.TryWrite(true);

    public void Start() => _thread.Start();

    public void Join() => _thread.Join();

    private long ScheduledAt(long request) => _clock.Start + (long)(request * _ticksPerRequest);

    private void Run()
    {
        if (OperatingSystem.IsLinux())
        {
            Libc.SetTimerSlack(1_000);
        }

        // Request j of the run goes to connection j mod C; everything before `next` has had its wake-up.
        for (long next = 0, due; (due = ScheduledAt(next)) < _clock.StopAt;)
        {
            SleepUntil(due);
            var now = Stopwatch.GetTimestamp();
            var end = next + 1;
            while (ScheduledAt(end) <= now && ScheduledAt(end) < _clock.StopAt)
            {
                end++;
            }

            // Each connection with a request in [next, end) once: its sender sends all that is due.
            for (var request = next; request < end && request < next + _connections; request++)
            {
                Wake((int)(request % _connections));
            }

            next = end;
        }

        // The schedule is over: any sender still waiting sees that it has nothing left to send.
        for (var index = 0; index < _connections; index++)
        {
            Wake(index);
        }
    }

    private static void SleepUntil(long timestamp)
    {
        for (long left; (left = timestamp - Stopwatch.GetTimestamp()) > 0;)
        {
            var nanoseconds = (long)(left * (1e9 / Stopwatch.Frequency));
            if (!OperatingSystem.IsLinux())
            {
                Thread.Sleep(TimeSpan.FromTicks(Math.Max(1, nanoseconds / 100)));
            }
            else if (Libc.NanoSleep(new Libc.TimeSpec(nanoseconds / 1_000_000_000, nanoseconds % 1_000_000_000), 0) != 0
                && System.Runtime.InteropServices.Marshal.GetLastPInvokeError() != Libc.Eintr)
            {
                Thread.Sleep(1);
            }
        }
    }
}
