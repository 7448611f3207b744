using BenchmarkDotNet.Running;

// The RPC request path without sockets: RpcHandler over in-memory pipes, a batch of 16 pipelined pings per
// operation, as LoadGen's `--pipeline 16` sends them. With metrics: the connection's record reports every request
// to the Gateway meter, with the OpenTelemetry SDK collecting it as in the gateway. Per-request figures: the
// benchmark's time and allocation divided by 16 (OperationsPerInvoke).
// usage: dotnet run -c Release --project bench/RpcBench [-- BenchmarkDotNet options, e.g. --filter '*' --job short]
BenchmarkSwitcher.FromAssembly(typeof(Gateway.RpcBench.RpcBatch).Assembly).Run(args);
