using Gateway.Fuzz;

// Fuzz targets for the protocol parsers, one per argument. Under afl-fuzz (bench/fuzz) SharpFuzz's fork server
// feeds each input to the target; on its own, a target replays files or runs on random inputs (mutated
// seeds), so it is never dead code where AFL cannot run. A target signals a finding by throwing: an
// exception that is not one of the protocol's own error results, or a FuzzFinding from an oracle.
const string Usage = """
    usage: Fuzz <target>                          run under afl-fuzz (SharpFuzz fork server; input from AFL)
           Fuzz <target> --random [--seconds 30] [--seed 1] [--out DIR]
                                                  mutate the seeds at random; the first finding is written to DIR
           Fuzz <target> --replay FILE...         run files; print the exception each one throws
           Fuzz <target> --seeds DIR              write the seed corpus
           Fuzz <target> --dict FILE              write an afl-fuzz dictionary
    targets: frames (RPC: length-prefixed frames through RpcHandler on in-memory pipes),
             ftp-command (LineReader through ProtocolReader, then FtpCommandParser.Parse),
             ftp-path (FtpPath.Resolve/Normalize, FtpFileStore.MapPath over a fixture with symlinks)
    Only the first form may run on an instrumented Gateway.Protocols.dll: elsewhere its probes have no shared
    memory to write to, and the process dies of an access violation.
    """;

if (args.Length == 0 || !FuzzTargets.Names.Contains(args[0]))
{
    Console.Error.WriteLine(Usage);
    return 2;
}

var name = args[0];
var mode = args.Length > 1 ? args[1] : "";
if (mode == "")
{
    // The fork server runs each input in a child process, which it restarts after a crash or a timeout.
    IFuzzTarget? fuzzed = null;
    SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
    {
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        fuzzed ??= FuzzTargets.Create(name);
        fuzzed.Run(copy.ToArray());
    });
    return 0;
}

// Every other mode runs the target's code outside afl-fuzz, so it needs the build that is not instrumented.
var target = FuzzTargets.Create(name);
switch (mode)
{

    case "--replay" when args.Length > 2:
        return Replay.Run(target, args[2..]);

    case "--seeds" when args.Length == 3:
        Directory.CreateDirectory(args[2]);
        var number = 0;
        foreach (var seed in target.Seeds())
        {
            File.WriteAllBytes(Path.Join(args[2], $"seed-{number++:D2}"), seed);
        }

        Console.WriteLine($"{number} seeds in {args[2]}");
        return 0;

    case "--dict" when args.Length == 3:
        File.WriteAllLines(args[2], target.Dictionary().Select((token, i) => $"t{i}=\"{Dictionary.Escape(token)}\""));
        return 0;

    case "--random":
        var options = RandomOptions.Parse(args[2..]);
        if (options is null)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        return RandomRun.Run(target, options);

    default:
        Console.Error.WriteLine(Usage);
        return 2;
}
