namespace Gateway.Models;

/// <summary>Why a model closed a connection it had just accepted; each is a <c>reason</c> of <c>gateway.connections.rejected</c>.</summary>
internal enum ModelRefusal
{
    /// <summary><c>select</c>: the descriptor is at or past FD_SETSIZE, which select(2) cannot watch.</summary>
    DescriptorPastSelectLimit,

    /// <summary><c>threads</c>, <c>iterative</c>: its threads would go over the process's <see cref="ThreadBudget"/>.</summary>
    MaxThreads,

    /// <summary>The system refused to start a thread for it (a PID or thread limit).</summary>
    NoThread,
}
