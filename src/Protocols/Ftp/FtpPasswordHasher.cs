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
        var parts = encoded?.Split('$');
        if (parts is not [Scheme, var iterationText, var saltText, var hashText]
            || !int.TryParse(iterationText, NumberStyles.None, CultureInfo.InvariantCulture, out var iterations)
            || iterations < 1)
        {
            return false;
        }

        byte[] salt, expected;
        try
        {
            salt = Convert.FromBase64String(saltText);
            expected = Convert.FromBase64String(hashText);
        }
        catch (FormatException)
        {
            return false;
        }

        var actual = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), salt, iterations, HashAlgorithmName.SHA256, expected.Length);
        return CryptographicOperations.FixedTimeEquals(actual, expected);
    }

    /// <summary>Whether the text is a hash this class can check (for validating configuration at start).</summary>
    public static bool IsWellFormed(string? encoded) =>
        encoded?.Split('$') is [Scheme, var iterations, var salt, var hash]
        && int.TryParse(iterations, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n > 0
        && IsBase64(salt) && IsBase64(hash);

    private static bool IsBase64(string text) => text.Length > 0 && Convert.TryFromBase64String(text, new byte[text.Length], out _);
}
