namespace Gateway.Fuzz;

/// <summary>One fuzz target: runs an input, throwing on a finding; knows its seeds and its dictionary.</summary>
internal interface IFuzzTarget
{
    string Name { get; }

    /// <summary>Returns when the input was handled as the protocol intends; throws anything else.</summary>
    void Run(byte[] input);

    IEnumerable<byte[]> Seeds();

    /// <summary>Tokens for afl-fuzz's <c>-x</c> and the random mode's insertions.</summary>
    IEnumerable<byte[]> Dictionary();
}

internal static class FuzzTargets
{
    public static readonly string[] Names = ["frames", "ftp-command", "ftp-path"];

    /// <summary>
    /// Makes the named target. Under afl-fuzz this must happen inside SharpFuzz's Run: instrumented code that
    /// runs before it has set up AFL's shared memory dies of an access violation (FramesTarget's statics build
    /// a ProtocolLimits, for one).
    /// </summary>
    public static IFuzzTarget Create(string name) => name switch
    {
        "frames" => new FramesTarget(),
        "ftp-command" => new FtpCommandTarget(),
        "ftp-path" => new FtpPathTarget(),
        _ => throw new ArgumentException($"no fuzz target {name}", nameof(name)),
    };
}

/// <summary>An oracle's verdict that the code under test did something it must not; afl-fuzz records it as a crash.</summary>
internal sealed class FuzzFinding(string message) : Exception(message);

/// <summary>
/// The first input byte of a stream target says how the client's bytes are split into writes: 0 is one write,
/// n is writes of n bytes. Each write is flushed before the next, so the parser sees every split point the
/// fuzzer picks (a CR at the end of one segment, a length prefix torn in two, ...).
/// </summary>
internal static class Chunking
{
    public static IEnumerable<ReadOnlyMemory<byte>> Split(byte[] input)
    {
        if (input.Length <= 1)
        {
            yield break;
        }

        var size = input[0] == 0 ? input.Length - 1 : input[0];
        for (var offset = 1; offset < input.Length; offset += size)
        {
            yield return input.AsMemory(offset, Math.Min(size, input.Length - offset));
        }
    }

    public static byte[] Data(byte[] input) => input.Length <= 1 ? [] : input[1..];

    public static byte[] With(byte chunk, ReadOnlySpan<byte> data) => [chunk, .. data];
}

internal static class Dictionary
{
    /// <summary>An afl-fuzz dictionary value: printable ASCII as is, the rest (and quote, backslash) as \xNN.</summary>
    public static string Escape(byte[] token) =>
        string.Concat(token.Select(b => b is >= 0x20 and < 0x7f and not (byte)'"' and not (byte)'\\' ? ((char)b).ToString() : $"\\x{b:X2}"));
}
