using System.Globalization;

namespace Gateway.Lab;

internal sealed partial class Comparison
{
    /// <summary>The idle connections of the quiet memory measure (goals P5a and P5b: both counts).</summary>
    public static readonly int[] QuietCounts = [10_000, 19_000];

    /// <summary>
    /// 5q. What an idle connection costs a quiet server: its PSS before and after N connections that send nothing
    /// are opened (by LoadGen <c>--connections 0</c>), with no other load, a fresh server for each count — the
    /// measure of goals P5a and P5b, Redis beside. Scenario 5's figure is larger: it takes the peak RSS of a server
    /// under load, which holds that load's garbage too.
    /// </summary>
    /// <remarks>
    /// Nothing is pinned: the runtime picks its collector's mode from the CPUs the process
    /// may use. The figure can come out below the heap census (bench/idle-heap): the start's garbage, collected and
    /// given back during the count, lowers the "after"; bench/README.md says so beside the figures.
    /// </remarks>
    private async Task QuietMemoryAsync()
    {
        Progress($"scenario 5q: PSS per idle connection of a quiet server, {string.Join(" and ", QuietCounts)} idle");
        foreach (var model in Models.Where(m => m.Name is "epoll" or "kestrel"))
        {
            foreach (var count in QuietCounts)
            {
                await WithGatewayAsync(model, null, (server, _, echo) => QuietAsync(model.Name, server, echo, count));
            }
        }

        foreach (var count in QuietCounts)
        {
            await WithRedisAsync(null, (server, port) => QuietAsync("redis", server, port, count));
        }
    }

    private async Task QuietAsync(string model, ServerProcess server, int port, int count)
    {
        if (FileLimit() < count + 1000)
        {
            Skip(model, "memory-quiet", 0, $"needs {count + 1000} descriptors; RLIMIT_NOFILE is {FileLimit()}", idle: count);
            return;
        }

        await Task.Delay(TimeSpan.FromSeconds(2)); // started and settled
        var before = server.PssBytes();
        IdleCrowd crowd;
        try
        {
            crowd = await IdleCrowd.OpenAsync(load.LoadGenDll, cpus: null, port, count, shares: 1, TimeSpan.FromMinutes(3));
        }
        catch (InvalidOperationException e)
        {
            Skip(model, "memory-quiet", 0, $"failed: {e.Message.Split('\n')[0]}", idle: count);
            return;
        }

        long after;
        int held;
        await using (crowd)
        {
            await Task.Delay(TimeSpan.FromSeconds(5)); // every connection taken and settled
            after = server.PssBytes();
            held = await crowd.ReleaseAsync();
        }

        var kib = (after - before) / 1024.0 / count;
        Add(new Row(model, "memory-quiet")
        {
            Idle = count,
            KibPerIdle = Math.Round(kib, 2),
            ServerRssMb = Math.Round(after / 1048576.0, 1),
            Partial = held < count,
            Note = string.Create(CultureInfo.InvariantCulture,
                $"{kib:0.00} KiB ({(after - before) / count:N0} bytes) per idle connection: PSS {before / 1048576.0:0.0} MB before, {after / 1048576.0:0.0} MB with {count:N0} idle, no load{(held < count ? $"; only {held:N0} still open at the end" : "")}"),
        });
    }
}
