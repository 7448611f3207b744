namespace Gateway.Fuzz;

/// <summary>Runs saved inputs (afl-fuzz's crashes, say) and prints what each throws: the finding to report.</summary>
internal static class Replay
{
    public static int Run(IFuzzTarget target, IEnumerable<string> files)
    {
        var failed = 0;
        foreach (var file in files)
        {
            var input = File.ReadAllBytes(file);
            if (Describe(target, input) is { } finding)
            {
                failed++;
                Console.WriteLine($"{file}: {finding}");
            }
            else
            {
                Console.WriteLine($"{file}: runs clean");
            }
        }

        return failed == 0 ? 0 : 1;
    }

    /// <summary>Null when the input runs clean; otherwise the exception, where it was thrown, and the input in hex.</summary>
    public static string? Describe(IFuzzTarget target, byte[] input)
    {
        try
        {
            target.Run(input);
            return null;
        }
        catch (Exception e)
        {
            // The frames that locate it: the first ones in the gateway's code or this project's oracles.
            var where = (e.StackTrace ?? "").Split('\n').Select(l => l.Trim())
                .Where(l => l.Contains("Gateway.", StringComparison.Ordinal) && !l.Contains("Gateway.Fuzz.Replay", StringComparison.Ordinal)).Take(4);
            var hex = input.Length <= 512 ? Convert.ToHexString(input) : Convert.ToHexString(input, 0, 512) + "...";
            return $"{e.GetType().FullName}: {e.Message}\n  {string.Join("\n  ", where)}\n  input ({input.Length} bytes, hex): {hex}";
        }
    }
}
