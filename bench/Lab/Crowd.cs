using System.Globalization;

namespace Gateway.Lab;

internal sealed partial class Comparison
{
    /// <summary>The crowd of scenario 5c: more idle connections than one process may hold here (20,000 descriptors).</summary>
    public const int CrowdSize = 100_000;

    /// <summary>Prefork workers for the crowd: each holds about 17k, below one process's descriptor limit.</summary>
    public const int CrowdWorkers = 6;

    /// <summary>The model name of the crowd's rows.</summary>
    public const string CrowdModel = "prefork (6 workers)";

    private const int CrowdActive = 16;

    /// <summary>
    /// 5c. 100,000 idle connections across prefork <c>async</c> workers, held by six LoadGen processes from six
    /// source addresses: 16 active RPC clients measured with no crowd, then among it (latency, and memory per
    /// idle connection over the whole process tree, supervisor and workers).
    /// </summary>
    private async Task CrowdAsync()
    {
        Progress($"scenario 5c: {CrowdActive} active clients among {CrowdSize:N0} idle across {CrowdWorkers} prefork workers");
        var model = new ModelConfig(CrowdModel, ModelConfig.Prefork("async", CrowdWorkers), ModelConfig.Unbounded);
        string[] active = ["--protocol", "rpc", "--connections", $"{CrowdActive}"];
        await WithGatewayAsync(model, options.ServerCpus, async (server, rpc, _) =>
        {
            var alone = await MeasureAsync(CrowdModel, "idle", server, options.LoadCpus, 0, 0, "no crowd", ["--port", $"{rpc}", .. active]);
            IdleCrowd crowd;
            try
            {
                crowd = await IdleCrowd.OpenAsync(load.LoadGenDll, options.LoadCpus, rpc, CrowdSize, CrowdWorkers, TimeSpan.FromMinutes(3));
            }
            catch (InvalidOperationException e)
            {
                Skip(CrowdModel, "idle", CrowdActive, $"failed: {e.Message.Split('\n')[0]}", idle: CrowdSize);
                return;
            }

            Row among;
            await using (crowd)
            {
                among = await CellAsync(CrowdModel, "idle", server, options.LoadCpus, 0, CrowdSize, null, ["--port", $"{rpc}", .. active]);
                var held = await crowd.ReleaseAsync();
                var how = $"the crowd held by {CrowdWorkers} LoadGen processes from 127.0.0.2-{1 + CrowdWorkers}";
                among = held == CrowdSize
                    ? among with { Note = among.Note is null ? how : $"{how}; {among.Note}" }
                    : among with { Partial = true, Note = $"only {held.ToString("N0", CultureInfo.InvariantCulture)} of the crowd still open at the end; {how}" };
            }

            Add(among);
            if (alone is not null && among.HasFigure)
            {
                AddMemory(CrowdModel, [alone, among]);
            }
        });
    }
}
