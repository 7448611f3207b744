namespace Gateway.Protocols.Ftp;

/// <summary>How a password verification on the <see cref="FtpPasswordVerifier"/> ended.</summary>
public enum FtpVerification
{
    Matched,
    Mismatched,

    /// <summary>Refused at once: every hashing thread busy and the queue full.</summary>
    QueueFull,

    /// <summary>Not done within the wait allowed; the caller no longer waits for it.</summary>
    TimedOut,
}

/// <summary>
/// Password verifications — PBKDF2 at hundreds of thousands of rounds, a third of a second of CPU each — run on a
/// few threads of their own, first come first served, with a bounded number waiting. On the thread pool they
/// would block the threads every protocol runs on (a login storm stalled RPC for seconds); here login traffic
/// costs at most these threads' CPU, and a waiter that gives up (timeout, connection gone) leaves the queue at once.
/// </summary>
public sealed class FtpPasswordVerifier : IDisposable
{
    private readonly Func<string, string, bool> _verify;
    private readonly int _threadCount;
    private readonly int _maxWaiting;
    private readonly LinkedList<Verification> _waiting = [];
    private readonly object _lock = new(); // guards _waiting, _running, _threads, _disposed; Monitor.Wait needs an object
    private Thread[]? _threads;
    private int _running;
    private bool _disposed;

    public FtpPasswordVerifier(FtpOptions options)
        : this((options ?? throw new ArgumentNullException(nameof(options))).MaxConcurrentLogins, options.MaxQueuedLogins, FtpPasswordHasher.Verify)
    {
    }

    /// <param name="verify">The verification itself (the password, the stored hash); tests pass their own.</param>
    internal FtpPasswordVerifier(int threads, int maxWaiting, Func<string, string, bool> verify)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxWaiting);
        _threadCount = threads;
        _maxWaiting = maxWaiting;
        _verify = verify;
    }

    /// <summary>Verifications waiting or running now.</summary>
    public int Pending
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count + _running;
            }
        }
    }

    /// <summary>
    /// Verifies <paramref name="password"/> against <paramref name="encodedHash"/> on a hashing thread, after those
    /// queued before it. <see cref="FtpVerification.QueueFull"/> at once when the queue is full;
    /// <see cref="FtpVerification.TimedOut"/> after <paramref name="timeout"/>. Cancelling (the connection ended)
    /// takes a verification that has not started out of the queue.
    /// </summary>
    public async Task<FtpVerification> VerifyAsync(string password, string encodedHash, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var verification = new Verification(password, encodedHash);
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_waiting.Count + _running >= _threadCount + _maxWaiting)
            {
                return FtpVerification.QueueFull;
            }

            _threads ??= StartThreads();
            verification.Node = _waiting.AddLast(verification);
            Monitor.Pulse(_lock);
        }

        try
        {
            return await verification.Result.Task.WaitAsync(timeout, cancellationToken);
        }
        catch (TimeoutException)
        {
            Withdraw(verification);
            return FtpVerification.TimedOut;
        }
        catch (OperationCanceledException)
        {
            Withdraw(verification);
            throw;
        }
    }

    /// <summary>Stops the threads once their current verification is done; what still waits is cancelled.</summary>
    public void Dispose()
    {
        Verification[] abandoned;
        lock (_lock)
        {
            _disposed = true;
            abandoned = [.. _waiting];
            _waiting.Clear();
            Monitor.PulseAll(_lock);
        }

        foreach (var verification in abandoned)
        {
            verification.Result.TrySetCanceled();
        }
    }

    private Thread[] StartThreads()
    {
        var threads = new Thread[_threadCount];
        for (var i = 0; i < threads.Length; i++)
        {
            threads[i] = new Thread(Run) { IsBackground = true, Name = $"ftp password {i + 1}" };
            threads[i].Start();
        }

        return threads;
    }

    private void Withdraw(Verification verification)
    {
        lock (_lock)
        {
            if (verification.Node?.List is not null)
            {
                _waiting.Remove(verification.Node);
            }
        }
    }

    private void Run()
    {
        while (Next() is { } verification)
        {
            var result = FtpVerification.Mismatched;
            Exception? failure = null;
            try
            {
                result = _verify(verification.Password, verification.EncodedHash) ? FtpVerification.Matched : FtpVerification.Mismatched;
            }
            catch (Exception e) when (e is ArgumentException or FormatException or System.Security.Cryptography.CryptographicException)
            {
                result = FtpVerification.Mismatched; // a hash this process cannot check matches nothing
            }
            catch (Exception e)
            {
                failure = e; // a bug, not a wrong password: its waiter hears of it, and this thread goes on (on a thread of its own, it would end the process)
            }

            // The slot is free before the waiter hears: a client answered at once may send its next PASS at once.
            lock (_lock)
            {
                _running--;
            }

            if (failure is null)
            {
                verification.Result.TrySetResult(result);
            }
            else
            {
                verification.Result.TrySetException(failure);
            }
        }
    }

    /// <summary>The oldest waiting verification, counted as running; null once disposed.</summary>
    private Verification? Next()
    {
        lock (_lock)
        {
            while (_waiting.First is null && !_disposed)
            {
                Monitor.Wait(_lock);
            }

            if (_disposed)
            {
                return null;
            }

            var verification = _waiting.First!.Value;
            _waiting.RemoveFirst();
            _running++;
            return verification;
        }
    }

    private sealed class Verification(string password, string encodedHash)
    {
        public string Password { get; } = password;

        public string EncodedHash { get; } = encodedHash;

        /// <summary>Completed on a pool thread, never inline on a hashing thread.</summary>
        public TaskCompletionSource<FtpVerification> Result { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Verification>? Node { get; set; }
    }
}
