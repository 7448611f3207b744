using Gateway.Connections;

namespace Gateway.Workers;

/// <summary>
/// A worker's answer to one request, as it arrives on the control channel: one message, or for a listing page
/// bigger than a frame its parts (<see cref="ControlMessage.More"/>), joined here in the order they came.
/// </summary>
internal sealed class ControlAnswer
{
    private readonly TaskCompletionSource<ControlMessage> _whole = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private List<ConnectionSnapshot>? _items;

    public Task<ControlMessage> Whole => _whole.Task;

    /// <summary>Takes the next part (from the channel's one reader); true when the answer is whole.</summary>
    public bool Add(ControlMessage part)
    {
        ArgumentNullException.ThrowIfNull(part);
        if (part.Listing is { } page && (part.More == true || _items is not null))
        {
            (_items ??= []).AddRange(page.Items);
            if (part.More == true)
            {
                return false;
            }

            part = part with { Listing = page with { Items = _items } };
        }

        _whole.TrySetResult(part);
        return true;
    }
}
