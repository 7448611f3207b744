using System.Net;
using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

public sealed class FtpLoginGuardTests
{
    private static readonly IPAddress Guesser = IPAddress.Parse("192.0.2.1");
    private static readonly IPAddress Neighbour = IPAddress.Parse("192.0.2.2");
    private readonly ManualTime _time = new();
    private readonly FtpLoginGuard _guard;

    public FtpLoginGuardTests() =>
        _guard = new FtpLoginGuard(new FtpOptions { Root = "/unused", MaxLoginFailuresPerAddress = 3, LockoutDuration = TimeSpan.FromMinutes(5) }, _time);

    [Fact]
    public void TheLimitLocksOutThatAddressOnly()
    {
        for (var i = 0; i < 2; i++)
        {
            _guard.Failed(Guesser);
        }

        Assert.False(_guard.IsLockedOut(Guesser));
        _guard.Failed(Guesser);
        Assert.Equal((true, false), (_guard.IsLockedOut(Guesser), _guard.IsLockedOut(Neighbour)));
    }

    [Fact]
    public void TheLockoutEndsWithItsWindowAndTheCountStartsAfresh()
    {
        for (var i = 0; i < 3; i++)
        {
            _guard.Failed(Guesser);
        }

        _time.Advance(TimeSpan.FromMinutes(5));
        Assert.True(_guard.IsLockedOut(Guesser));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.False(_guard.IsLockedOut(Guesser));
        _guard.Failed(Guesser);
        _guard.Failed(Guesser);
        Assert.False(_guard.IsLockedOut(Guesser));
    }

    [Fact]
    public void FailuresSpreadOverTheWindowStillAddUp()
    {
        _guard.Failed(Guesser);
        _time.Advance(TimeSpan.FromMinutes(2));
        _guard.Failed(Guesser);
        _time.Advance(TimeSpan.FromMinutes(2));
        _guard.Failed(Guesser);
        Assert.True(_guard.IsLockedOut(Guesser));
        _time.Advance(TimeSpan.FromMinutes(1.1)); // five minutes from the first failure
        Assert.False(_guard.IsLockedOut(Guesser));
    }

    [Fact]
    public void AddressesWhoseWindowHasPassedAreSweptOutOnceTheTableIsLarge()
    {
        for (var i = 0; i < 2000; i++)
        {
            _guard.Failed(new IPAddress(i + 1L));
        }

        Assert.Equal(2000, _guard.Tracked);
        _time.Advance(TimeSpan.FromMinutes(6));
        _guard.Failed(Guesser);
        Assert.Equal(1, _guard.Tracked);
    }
}
