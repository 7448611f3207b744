using Microsoft.Diagnostics.Runtime;

// Counts the objects reachable from the GC roots of a running .NET process, by type: one line per type,
// "count<TAB>bytes<TAB>type". The process is suspended only while a snapshot (createdump) is taken; the
// walk runs on the snapshot. Dead objects are left out, so two censuses differ by what is really held.
// usage: HeapCensus <pid>
if (args.Length != 1 || !int.TryParse(args[0], out var pid))
{
    Console.Error.WriteLine("usage: HeapCensus <pid>");
    return 2;
}

using var target = DataTarget.CreateSnapshotAndAttach(pid);
var clr = target.ClrVersions[0];
// The DAC ships beside the runtime the process loaded, so it matches by construction; ClrMD would otherwise
// look for it on a symbol server. It cannot read that runtime's version from a snapshot (it sees 0.0), hence
// ignoreMismatch.
var dac = Path.Combine(Path.GetDirectoryName(clr.ModuleInfo.FileName)!, "libmscordaccore.so");
using var runtime = clr.CreateRuntime(dac, ignoreMismatch: true);
var heap = runtime.Heap;

var seen = new HashSet<ulong>();
var pending = new Stack<ulong>();
foreach (var root in heap.EnumerateRoots())
{
    if (root.Object.Address != 0 && seen.Add(root.Object.Address))
    {
        pending.Push(root.Object.Address);
    }
}

var census = new Dictionary<string, (long Count, long Bytes)>();
while (pending.Count > 0)
{
    var obj = heap.GetObject(pending.Pop());
    if (!obj.IsValid)
    {
        continue;
    }

    var name = obj.Type?.Name ?? "?";
    census.TryGetValue(name, out var entry);
    census[name] = (entry.Count + 1, entry.Bytes + (long)obj.Size);
    foreach (var reference in obj.EnumerateReferenceAddresses(carefully: true))
    {
        if (reference != 0 && seen.Add(reference))
        {
            pending.Push(reference);
        }
    }
}

foreach (var (name, (count, bytes)) in census.OrderByDescending(e => e.Value.Bytes))
{
    Console.WriteLine($"{count}\t{bytes}\t{name}");
}

return 0;
