using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Protocols.Ftp;

/// <summary>
/// Password hashes for configured FTP users: PBKDF2-HMAC-SHA256 from the base library, stored as
/// <c>pbkdf2-sha256$iterations$salt$hash</c> (base64), so the work factor can rise without breaking old hashes.
/// </summary>
public static class FtpPasswordHasher
{
    public const string Scheme = "pbkdf2-sha256";

    /// <summary>OWASP's 2023 figure for PBKDF2-HMAC-SHA256.</summary>
    public const int DefaultIterations = 600_000;

    private const int SaltBytes = 16;
    private const int HashBytes = 32;

    public static string Hash(string password, int iterations = DefaultIterations)
    {
        ArgumentNullException.ThrowIfNull(password);
        ArgumentOutOfRangeException.ThrowIfLessThan(iterations, 1);
        var salt = RandomNumberGenerator.GetBytes(SaltBytes);
        var hash = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, HashBytes);
        return string.Join('$', Scheme, iterations.ToString(CultureInfo.InvariantCulture), Convert.ToBase64String(salt), Convert.ToBase64String(hash));
    }

    /// <summary>Whether <paramref name="password"/> matches; false (never an exception) for a malformed hash.</summary>
    public static bool Verify(string password, string? encoded)
    {
        ArgumentNullException.ThrowIfNull(password);
        if (!TryDecode(encoded, out var iterations, out var salt, out var expected))
        {
            return false;
        }

        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>
    /// A well-formed hash that no password matches (its hash bytes are random), costing to verify what most of
    /// <paramref name="hashes"/> cost: the same rounds and length (the default ones when there are none). A login
    /// for a name that does not exist is verified against it, so it takes as long as one for a name that does.
    /// </summary>
    public static string Decoy(IEnumerable<string> hashes)
    {
        ArgumentNullException.ThrowIfNull(hashes);
        var (iterations, saltBytes, hashBytes) = hashes
            .Select(h => TryDecode(h, out var n, out var salt, out var hash) ? (Iterations: n, SaltBytes: salt.Length, HashBytes: hash.Length) : default)
            .Where(cost => cost.Iterations > 0)
            .CountBy(cost => cost)
            .OrderByDescending(c => c.Value).ThenByDescending(c => c.Key.Iterations)
            .Select(c => c.Key)
            .FirstOrDefault((DefaultIterations, SaltBytes, HashBytes));
        return string.Join('$', Scheme, iterations.ToString(CultureInfo.InvariantCulture),
            Convert.ToBase64String(RandomNumberGenerator.GetBytes(saltBytes)), Convert.ToBase64String(RandomNumberGenerator.GetBytes(hashBytes)));
    }

    /// <summary>The rounds a hash asks for; 0 for a malformed one.</summary>
    public static int IterationsOf(string? encoded) => TryDecode(encoded, out var iterations, out _, out _) ? iterations : 0;

    /// <summary>Whether the text is a hash this class can check (for validating configuration at start).</summary>
    public static bool IsWellFormed(string? encoded) => TryDecode(encoded, out _, out _, out _);

    private static bool TryDecode(string? encoded, out int iterations, out byte[] salt, out byte[] hash)
    {
        iterations = 0;
        salt = hash = [];
        if (encoded?.Split('$') is not [Scheme, var iterationText, var saltText, var hashText]
            || !int.TryParse(iterationText, NumberStyles.None, CultureInfo.InvariantCulture, out iterations)
            || iterations < 1)
        {
            iterations = 0;
            return false;
        }

        try
        {
            salt = Convert.FromBase64String(saltText);
            hash = Convert.FromBase64String(hashText);
        }
        catch (FormatException)
        {
            salt = hash = [];
        }

        if (salt.Length == 0 || hash.Length == 0)
        {
            iterations = 0;
            return false;
        }

        return true;
    }
}
