using BenchmarkDotNet.Running;
using Gateway.RpcBench;

// The RPC request path without sockets: RpcHandler over in-memory pipes, a batch of 16 pipelined pings per
// operation, as LoadGen's `--pipeline 16` sends them. With metrics: the connection's record reports every request
// to the Gateway meter, with the OpenTelemetry SDK collecting it as in the gateway. Per-request figures: the
// benchmark's time and allocation divided by 16 (OperationsPerInvoke).
// usage: dotnet run -c Release --project bench/RpcBench [-- BenchmarkDotNet options, e.g. --filter '*' --job short]
//        dotnet bench/RpcBench/bin/Release/net10.0/RpcBench.dll --loop SECONDS [--metrics]   (for a profiler: no harness)
if (args is ["--loop", var seconds, ..])
{
    var batch = new RpcBatch { Metrics = args.Contains("--metrics") };
    batch.Setup();
    var until = DateTime.UtcNow.AddSeconds(double.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture));
    long batches = 0;
    while (DateTime.UtcNow < until)
    {
        for (var i = 0; i < 10_000; i++)
        {
            batch.SixteenPings();
        }

        batches += 10_000;
    }

    batch.Cleanup();
    Console.WriteLine($"{batches * 16} requests");
    return;
}

BenchmarkSwitcher.FromAssembly(typeof(RpcBatch).Assembly).Run(args);
