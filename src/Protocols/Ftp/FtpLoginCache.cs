using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Logins that passed PBKDF2, remembered for a short time (SFTPGo's password cache), so that a client opening
/// many sessions (lftp mirror, rclone) pays for the hash once per <c>lifetime</c> instead of once per session.
/// An entry is an HMAC-SHA256 of the user name and password under a key made at start and never stored
/// anywhere else (never the password), compared in constant time; with it the stored hash it was checked
/// against, so a changed hash forgets it. Only successes are remembered: a wrong password is always hashed.
/// </summary>
public sealed class FtpLoginCache
{
    /// <summary>Entries at most; one per account, so more than any configuration here has.</summary>
    public const int DefaultCapacity = 10_000;

    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly TimeSpan _lifetime;
    private readonly int _capacity;
    private readonly TimeProvider _time;

    public FtpLoginCache(FtpOptions options)
        : this((options ?? throw new ArgumentNullException(nameof(options))).LoginCacheDuration)
    {
    }

    /// <param name="lifetime">How long a success is remembered; zero remembers nothing.</param>
    internal FtpLoginCache(TimeSpan lifetime, int capacity = DefaultCapacity, TimeProvider? time = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _lifetime = lifetime;
        _capacity = capacity;
        _time = time ?? TimeProvider.System;
    }

    internal int Count => _entries.Count;

    /// <summary>Whether <paramref name="user"/> logged in with this password, against this stored hash, within the lifetime.</summary>
    public bool Remembers(string user, string passwordHash, string password)
    {
        ArgumentNullException.ThrowIfNull(user);
        if (_lifetime <= TimeSpan.Zero || !_entries.TryGetValue(user, out var entry))
        {
            return false;
        }

        if (IsExpired(entry) || !string.Equals(entry.PasswordHash, passwordHash, StringComparison.Ordinal))
        {
            _entries.TryRemove(KeyValuePair.Create(user, entry));
            return false;
        }

        return CryptographicOperations.FixedTimeEquals(entry.Mac, Mac(user, password));
    }

    /// <summary>Remembers a login that PBKDF2 has just accepted (when there is room).</summary>
    public void Remember(string user, string passwordHash, string password)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(passwordHash);
        if (_lifetime <= TimeSpan.Zero)
        {
            return;
        }

        if (_entries.Count >= _capacity && !_entries.ContainsKey(user))
        {
            foreach (var (name, old) in _entries)
            {
                if (IsExpired(old))
                {
                    _entries.TryRemove(KeyValuePair.Create(name, old));
                }
            }

            if (_entries.Count >= _capacity)
            {
                return; // full of live entries: this login is simply hashed again next time
            }
        }

        _entries[user] = new Entry(Mac(user, password), passwordHash, _time.GetTimestamp());
    }

    private bool IsExpired(Entry entry) => _time.GetElapsedTime(entry.Remembered) >= _lifetime;

    /// <summary>HMAC(key, length of the name · name · password), so no two name/password pairs share an input.</summary>
    private byte[] Mac(string user, string password)
    {
        var input = new byte[4 + Encoding.UTF8.GetByteCount(user) + Encoding.UTF8.GetByteCount(password)];
        try
        {
            var nameBytes = Encoding.UTF8.GetBytes(user, input.AsSpan(4));
            BinaryPrimitives.WriteInt32LittleEndian(input, nameBytes);
            Encoding.UTF8.GetBytes(password, input.AsSpan(4 + nameBytes));
            return HMACSHA256.HashData(_key, input);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(input); // the password's bytes do not linger on the heap
        }
    }

    private sealed record Entry(byte[] Mac, string PasswordHash, long Remembered);
}
