using System.Runtime.CompilerServices;

namespace Gateway.Protocols;

/// <summary>
/// Handlers may run to completion on the thread that read their bytes, an I/O thread that serves many other
/// connections too (the transport below decides; protocols cannot tell which it is), so work that may take long
/// (a heavy method, file system calls, password hashing) leaves it first, explicitly, with
/// <c>await IoThread.LeaveAsync()</c>. The rest of that request then runs on the thread pool; the next read
/// brings the handler back to the I/O thread.
/// </summary>
public static class IoThread
{
    /// <summary>
    /// Continues on the thread pool, at once when already there (a pool thread serves one request at a time, so
    /// nothing is gained by hopping from it).
    /// </summary>
    public static LeaveAwaitable LeaveAsync() => default;

    /// <summary>The awaitable of <see cref="LeaveAsync"/>.</summary>
    public readonly struct LeaveAwaitable : ICriticalNotifyCompletion
    {
        public LeaveAwaitable GetAwaiter() => this;

        public bool IsCompleted => Thread.CurrentThread.IsThreadPoolThread;

        public void GetResult()
        {
        }

        public void OnCompleted(Action continuation) =>
            ThreadPool.QueueUserWorkItem(static c => c(), continuation, preferLocal: false);

        public void UnsafeOnCompleted(Action continuation) =>
            ThreadPool.UnsafeQueueUserWorkItem(static c => c(), continuation, preferLocal: false);
    }
}
