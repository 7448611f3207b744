using System.Collections.Concurrent;
using System.Net;
using Gateway.Protocols.Ftp;

namespace Gateway.Protocols.Tests.Ftp;

/// <summary>
/// The login decision over the real PBKDF2 (at 1000 rounds), the real cache and guard, and the verifier's threads;
/// the seam is the verification function, which the tests wrap to see every PBKDF2 run and the hash it ran on.
/// </summary>
public sealed class FtpAuthenticatorTests : IDisposable
{
    private static readonly IPAddress Client = IPAddress.Parse("192.0.2.10");
    private static readonly string AliceHash = FtpPasswordHasher.Hash("alice-pw", 1000);
    private static readonly string BobHash = FtpPasswordHasher.Hash("bob-pw", 1000);

    private readonly ConcurrentQueue<string> _verified = new(); // the stored hash of each PBKDF2 run
    private readonly FtpPasswordVerifier _verifier;
    private readonly FtpLoginCache _cache = new(TimeSpan.FromMinutes(1));

    public FtpAuthenticatorTests() => _verifier = new FtpPasswordVerifier(1, 8, (password, hash) =>
    {
        _verified.Enqueue(hash);
        return FtpPasswordHasher.Verify(password, hash);
    });

    public void Dispose() => _verifier.Dispose();

    private static FtpOptions Options(params FtpUser[] users) => new()
    {
        Root = "/unused",
        Users = users.Length > 0 ? users : [new FtpUser("alice", AliceHash), new FtpUser("bob", BobHash)],
        AllowAnonymous = true,
        MaxLoginFailuresPerAddress = 3,
    };

    private FtpAuthenticator Authenticator(FtpOptions? options = null)
    {
        options ??= Options();
        return new FtpAuthenticator(options, new FtpLoginGuard(options), _cache, _verifier);
    }

    private static Task<FtpLogin> LogIn(FtpAuthenticator authenticator, string name, string password, IPAddress? from = null) =>
        authenticator.LogInAsync(from ?? Client, name, password, CancellationToken.None);

    [Fact]
    public async Task AMissingUserCostsTheSameVerificationAsAnExistingOne()
    {
        var authenticator = Authenticator();
        var existing = await LogIn(authenticator, "alice", "wrong");
        var existingRuns = _verified.ToArray();
        _verified.Clear();
        var missing = await LogIn(authenticator, "nobody-here", "wrong");
        var missingRuns = _verified.ToArray();

        Assert.Equal(existing, missing); // the same outcome, checked the same way
        Assert.Equal(new FtpLogin(FtpLoginOutcome.Failed, FtpPasswordCheck.Hash), missing);
        Assert.Equal(
            existingRuns.Select(FtpPasswordHasher.IterationsOf),
            missingRuns.Select(FtpPasswordHasher.IterationsOf));
        Assert.Equal([1000], missingRuns.Select(FtpPasswordHasher.IterationsOf));
    }

    [Fact]
    public void TheDecoyCostsWhatMostAccountsCostAndMatchesNothing()
    {
        Assert.Equal(FtpPasswordHasher.DefaultIterations, FtpPasswordHasher.IterationsOf(FtpPasswordHasher.Decoy([])));
        var decoy = FtpPasswordHasher.Decoy([AliceHash, BobHash, FtpPasswordHasher.Hash("old", 500)]);
        Assert.Equal(1000, FtpPasswordHasher.IterationsOf(decoy));
        Assert.True(FtpPasswordHasher.IsWellFormed(decoy));
        Assert.False(FtpPasswordHasher.Verify("", decoy));
        Assert.NotEqual(decoy, FtpPasswordHasher.Decoy([AliceHash])); // random each time: nothing to precompute
    }

    [Fact]
    public async Task ASecondLoginIsRememberedAndRunsNoHash()
    {
        var authenticator = Authenticator();
        var first = await LogIn(authenticator, "alice", "alice-pw");
        var second = await LogIn(authenticator, "alice", "alice-pw");
        Assert.Equal((FtpLoginOutcome.Ok, FtpPasswordCheck.Hash), (first.Outcome, first.Check));
        Assert.Equal((FtpLoginOutcome.Ok, FtpPasswordCheck.Cache, "alice"), (second.Outcome, second.Check, second.User?.Name));
        Assert.Single(_verified);
    }

    [Fact]
    public async Task AWrongPasswordAfterARememberedLoginIsHashedAndRefused()
    {
        var authenticator = Authenticator();
        await LogIn(authenticator, "alice", "alice-pw");
        var wrong = await LogIn(authenticator, "alice", "alice-pw ");
        Assert.Equal(new FtpLogin(FtpLoginOutcome.Failed, FtpPasswordCheck.Hash), wrong);
        Assert.Equal(2, _verified.Count);
        Assert.Equal(FtpPasswordCheck.Cache, (await LogIn(authenticator, "alice", "alice-pw")).Check); // still remembered
    }

    [Fact]
    public async Task AChangedHashIsVerifiedAgain()
    {
        await LogIn(Authenticator(), "alice", "alice-pw");
        var rehashed = Options(new FtpUser("alice", FtpPasswordHasher.Hash("alice-pw", 1000)));
        var login = await LogIn(Authenticator(rehashed), "alice", "alice-pw");
        Assert.Equal((FtpLoginOutcome.Ok, FtpPasswordCheck.Hash), (login.Outcome, login.Check));
        Assert.Equal(2, _verified.Count);
    }

    [Fact]
    public async Task OtherAccountsLoginsDoNotClearTheAddressesFailures()
    {
        var authenticator = Authenticator();
        Assert.Equal(FtpLoginOutcome.Failed, (await LogIn(authenticator, "alice", "guess-1")).Outcome);
        Assert.Equal(FtpLoginOutcome.Ok, (await LogIn(authenticator, "bob", "bob-pw")).Outcome);
        Assert.Equal(FtpLoginOutcome.Failed, (await LogIn(authenticator, "alice", "guess-2")).Outcome);
        Assert.Equal(FtpLoginOutcome.Ok, (await LogIn(authenticator, "anonymous", "a@b")).Outcome);
        Assert.Equal(FtpLoginOutcome.Failed, (await LogIn(authenticator, "alice", "guess-3")).Outcome);
        var runs = _verified.Count;

        Assert.Equal(new FtpLogin(FtpLoginOutcome.LockedOut, FtpPasswordCheck.None), await LogIn(authenticator, "alice", "alice-pw"));
        Assert.Equal(FtpLoginOutcome.LockedOut, (await LogIn(authenticator, "bob", "bob-pw")).Outcome);
        Assert.Equal(runs, _verified.Count); // a locked-out address costs no hash
        Assert.Equal(FtpLoginOutcome.Ok, (await LogIn(authenticator, "alice", "alice-pw", IPAddress.Parse("192.0.2.11"))).Outcome);
    }

    [Fact]
    public async Task AnonymousIsAReadOnlyAccountInItsHomeAndRunsNoHash()
    {
        var login = await LogIn(Authenticator(), "FTP", "guest@example.org");
        Assert.Equal((FtpLoginOutcome.Ok, FtpPasswordCheck.None, true, "anonymous"), (login.Outcome, login.Check, login.User!.ReadOnly, login.User.Home));
        Assert.Empty(_verified);
    }
}
