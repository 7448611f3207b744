using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

public sealed class FtpLoginCacheTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private readonly ManualTime _time = new();

    [Fact]
    public void RemembersALoginForTheSameUserPasswordAndStoredHash()
    {
        var cache = new FtpLoginCache(Minute, time: _time);
        Assert.False(cache.Remembers("alice", "hash-1", "secret"));
        cache.Remember("alice", "hash-1", "secret");
        Assert.True(cache.Remembers("alice", "hash-1", "secret"));
        Assert.False(cache.Remembers("bob", "hash-1", "secret"));
    }

    [Theory]
    [InlineData("secret ")]
    [InlineData("Secret")]
    [InlineData("")]
    [InlineData("secret-but-longer")]
    public void AnotherPasswordIsNotRemembered(string other)
    {
        var cache = new FtpLoginCache(Minute, time: _time);
        cache.Remember("alice", "hash-1", "secret");
        Assert.False(cache.Remembers("alice", "hash-1", other));
        Assert.True(cache.Remembers("alice", "hash-1", "secret")); // a wrong password does not evict the right one
    }

    [Fact]
    public void AChangedStoredHashForgetsTheLogin()
    {
        var cache = new FtpLoginCache(Minute, time: _time);
        cache.Remember("alice", "hash-1", "secret");
        Assert.False(cache.Remembers("alice", "hash-2", "secret"));
        Assert.Equal(0, cache.Count);
        Assert.False(cache.Remembers("alice", "hash-1", "secret"));
    }

    [Fact]
    public void ALoginIsForgottenOnceItsLifetimeHasPassed()
    {
        var cache = new FtpLoginCache(Minute, time: _time);
        cache.Remember("alice", "hash-1", "secret");
        _time.Advance(TimeSpan.FromSeconds(59));
        Assert.True(cache.Remembers("alice", "hash-1", "secret"));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(cache.Remembers("alice", "hash-1", "secret"));
    }

    [Fact]
    public void ALifetimeOfZeroRemembersNothing()
    {
        var cache = new FtpLoginCache(TimeSpan.Zero, time: _time);
        cache.Remember("alice", "hash-1", "secret");
        Assert.False(cache.Remembers("alice", "hash-1", "secret"));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void WhenFullOfLiveEntriesANewLoginIsNotRememberedAndExpiredOnesMakeRoom()
    {
        var cache = new FtpLoginCache(Minute, capacity: 2, time: _time);
        cache.Remember("alice", "hash-a", "a");
        _time.Advance(TimeSpan.FromSeconds(30));
        cache.Remember("bob", "hash-b", "b");
        cache.Remember("carol", "hash-c", "c");
        Assert.Equal((2, false), (cache.Count, cache.Remembers("carol", "hash-c", "c")));

        _time.Advance(TimeSpan.FromSeconds(30)); // alice's entry has expired, bob's has not
        cache.Remember("carol", "hash-c", "c");
        Assert.True(cache.Remembers("carol", "hash-c", "c"));
        Assert.True(cache.Remembers("bob", "hash-b", "b"));
        Assert.False(cache.Remembers("alice", "hash-a", "a"));
    }
}
