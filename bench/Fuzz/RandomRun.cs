using System.Diagnostics;
using System.Globalization;

namespace Gateway.Fuzz;

internal sealed record RandomOptions(double Seconds, int Seed, string Out)
{
    public static RandomOptions? Parse(string[] args)
    {
        var options = new RandomOptions(30, 1, Path.Join(Path.GetTempPath(), "gateway-fuzz-findings"));
        for (var i = 0; i < args.Length; i += 2)
        {
            if (i + 1 >= args.Length)
            {
                return null;
            }

            var value = args[i + 1];
            switch (args[i])
            {
                case "--seconds" when double.TryParse(value, CultureInfo.InvariantCulture, out var seconds) && seconds > 0:
                    options = options with { Seconds = seconds };
                    break;
                case "--seed" when int.TryParse(value, CultureInfo.InvariantCulture, out var seed):
                    options = options with { Seed = seed };
                    break;
                case "--out":
                    options = options with { Out = value };
                    break;
                default:
                    return null;
            }
        }

        return options;
    }
}

/// <summary>
/// Fuzzing without coverage: the seeds, mutated a few times each (bit flips, interesting bytes and lengths,
/// insertions, deletions, copies, dictionary tokens, splices), for a bounded time. Repeatable for a given
/// seed; stops at the first finding and writes its input. Where afl-fuzz runs, it finds far more.
/// </summary>
internal static class RandomRun
{
    private const int MaxInputBytes = 64 * 1024;
    private const int MaxCorpus = 2000;
    private static readonly uint[] InterestingLengths = [0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 0x1000, 0x1001, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff];

    public static int Run(IFuzzTarget target, RandomOptions options)
    {
        var random = new Random(options.Seed);
        var seeds = target.Seeds().ToArray();
        var corpus = seeds.ToList();
        var tokens = target.Dictionary().ToList();
        var clock = Stopwatch.StartNew();
        long executions = 0;
        foreach (var seed in seeds)
        {
            if (Check(target, seed, options, executions++) is { } failure)
            {
                return failure;
            }
        }

        while (clock.Elapsed.TotalSeconds < options.Seconds)
        {
            // Half the time a seed itself: kept mutants are mostly broken, and would crowd the seeds out.
            var input = (random.Next(2) == 0 ? seeds[random.Next(seeds.Length)] : corpus[random.Next(corpus.Count)]).ToList();
            var rounds = 1 + random.Next(8);
            for (var r = 0; r < rounds; r++)
            {
                Mutate(input, random, tokens, corpus);
            }

            var bytes = input.ToArray();
            if (Check(target, bytes, options, executions++) is { } failure)
            {
                return failure;
            }

            // Keep some mutants, so that mutations pile up over a run (no coverage to choose better).
            if (random.Next(16) == 0)
            {
                if (corpus.Count < MaxCorpus)
                {
                    corpus.Add(bytes);
                }
                else
                {
                    corpus[random.Next(corpus.Count)] = bytes;
                }
            }
        }

        Console.WriteLine($"{target.Name}: {executions} executions in {clock.Elapsed.TotalSeconds:0.0} s "
            + $"({executions / clock.Elapsed.TotalSeconds:0}/s), seed {options.Seed}: no finding");
        return 0;
    }

    private static int? Check(IFuzzTarget target, byte[] input, RandomOptions options, long execution)
    {
        if (Replay.Describe(target, input) is not { } finding)
        {
            return null;
        }

        Directory.CreateDirectory(options.Out);
        var file = Path.Join(options.Out, $"{target.Name}-seed{options.Seed}-exec{execution}");
        File.WriteAllBytes(file, input);
        Console.WriteLine($"{target.Name}: finding at execution {execution} (seed {options.Seed}), input in {file}:\n{finding}");
        return 1;
    }

    private static void Mutate(List<byte> input, Random random, List<byte[]> tokens, List<byte[]> corpus)
    {
        var at = input.Count == 0 ? 0 : random.Next(input.Count);
        switch (random.Next(8))
        {
            case 0 when input.Count > 0:
                input[at] ^= (byte)(1 << random.Next(8));
                break;
            case 1 when input.Count > 0:
                input[at] = random.Next(2) == 0 ? (byte)random.Next(256) : new byte[] { 0, 1, 0x0a, 0x0d, 0x2e, 0x2f, 0x7f, 0x80, 0xc3, 0xff }[random.Next(10)];
                break;
            case 2:
                var inserted = new byte[1 + random.Next(8)];
                random.NextBytes(inserted);
                input.InsertRange(at, inserted);
                break;
            case 3 when input.Count > 1:
                input.RemoveRange(at, 1 + random.Next(Math.Min(16, input.Count - at)));
                break;
            case 4 when input.Count > 0:
                var length = 1 + random.Next(Math.Min(64, input.Count - at));
                var copy = input.GetRange(at, length);
                input.InsertRange(random.Next(input.Count + 1), copy);
                break;
            case 5 when tokens.Count > 0:
                input.InsertRange(at, tokens[random.Next(tokens.Count)]);
                break;
            case 6:
                var other = corpus[random.Next(corpus.Count)];
                var from = other.Length == 0 ? 0 : random.Next(other.Length);
                input.RemoveRange(at, input.Count - at);
                input.AddRange(other.AsSpan(from).ToArray());
                break;
            default:
                var value = random.Next(3) == 0 ? (uint)random.Next(0, 5000) : InterestingLengths[random.Next(InterestingLengths.Length)];
                byte[] le = [(byte)value, (byte)(value >> 8), (byte)(value >> 16), (byte)(value >> 24)];
                for (var i = 0; i < 4; i++)
                {
                    if (at + i < input.Count)
                    {
                        input[at + i] = le[i];
                    }
                    else
                    {
                        input.Add(le[i]);
                    }
                }

                break;
        }

        if (input.Count > MaxInputBytes)
        {
            input.RemoveRange(MaxInputBytes, input.Count - MaxInputBytes);
        }
    }
}
