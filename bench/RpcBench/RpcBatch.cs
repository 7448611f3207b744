using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using BenchmarkDotNet.Attributes;
using Gateway.Connections;
using Gateway.Listeners;
using Gateway.Protocols;
using Gateway.Protocols.Framing;
using Gateway.Protocols.Rpc;
using Gateway.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using OpenTelemetry.Metrics;

namespace Gateway.RpcBench;

[MemoryDiagnoser]
public class RpcBatch
{
    private const int Batch = 16;

    private readonly Pipe _input = new(new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
    private readonly Pipe _output = new(new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
    private byte[] _requests = [];
    private long _replyBytes;
    private Task? _handler;
    private ServiceProvider? _services;

    [Params(false, true)]
    public bool Metrics { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var frames = new ArrayBufferWriter<byte>();
        var ping = Encoding.UTF8.GetBytes("""{"in":"ping","id":1}""");
        for (var i = 0; i < Batch; i++)
        {
            LengthPrefixedFrameWriter.WriteFrame(ping, frames);
        }

        _requests = frames.WrittenSpan.ToArray();
        var connection = new DefaultConnectionContext("bench")
        {
            Transport = new Duplex(_input.Reader, _output.Writer),
            RemoteEndPoint = new IPEndPoint(IPAddress.Loopback, 40000),
            LocalEndPoint = new IPEndPoint(IPAddress.Loopback, 7008),
        };
        if (Metrics)
        {
            connection.Features.Set<IProtocolActivityFeature>(Record(connection));
        }

        _handler = new RpcHandler(new ProtocolLimits()).OnConnectedAsync(connection);
        SixteenPings();
        _replyBytes = 0;
        SixteenPings();
        if (_replyBytes != Batch * """{"out":"pong","result":null,"id":1}""".Length + Batch * 4)
        {
            throw new InvalidOperationException($"expected {Batch} pongs, got {_replyBytes} bytes");
        }
    }

    /// <summary>The record the connection middleware gives a connection, reporting to a collected Gateway meter.</summary>
    private ConnectionRecord Record(ConnectionContext connection)
    {
        var endpoint = new ListenerEndpoint("Gateway:Listeners:Rpc", "rpc", ListenerProtocol.Rpc, "epoll", IPAddress.Loopback, false, 7008);
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddMetrics();
        var admin = new ListenerEndpoint("Gateway:Admin", "admin", null, "kestrel", IPAddress.Loopback, false, 8080);
        services.AddSingleton(new GatewayListeners([endpoint, admin], NullLogger<GatewayListeners>.Instance));
        services.AddSingleton<ConnectionRegistry>();
        services.AddGatewayTelemetry(new ConfigurationBuilder().Build());
        _services = services.BuildServiceProvider();
        _ = _services.GetRequiredService<MeterProvider>();
        var listeners = _services.GetRequiredService<GatewayListeners>();
        return new ConnectionRecord(1, "bench", listeners.Stats[0], connection, traffic: null, _services.GetRequiredService<GatewayMetrics>());
    }

    [Benchmark(OperationsPerInvoke = Batch)]
    public void SixteenPings()
    {
        var flush = _input.Writer.WriteAsync(_requests);
        if (!flush.IsCompletedSuccessfully)
        {
            throw new InvalidOperationException("the handler did not take the batch at once");
        }

        if (!_output.Reader.TryRead(out var replies))
        {
            throw new InvalidOperationException("no replies");
        }

        _replyBytes += replies.Buffer.Length;
        _output.Reader.AdvanceTo(replies.Buffer.End);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _input.Writer.Complete();
        _handler?.GetAwaiter().GetResult();
        _services?.Dispose();
    }
}

internal sealed record Duplex(PipeReader Input, PipeWriter Output) : IDuplexPipe;
