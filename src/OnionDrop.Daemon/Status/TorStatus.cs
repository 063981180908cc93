namespace OnionDrop.Daemon.Status;

/// <summary>What the status file says about tor: a snapshot of the supervisor's view.</summary>
public sealed record TorStatus
{
    /// <summary>A tor process is up (Launch) or its control socket answers (System).</summary>
    public bool Running { get; init; }

    /// <summary>The launched tor's pid; null for the system tor or when none runs.</summary>
    public int? Pid { get; init; }

    /// <summary>Bootstrap progress 0-100 (control-spec STATUS_CLIENT BOOTSTRAP PROGRESS=).</summary>
    public int BootstrapPercent { get; init; }

    /// <summary>Tor's own words for the bootstrap phase, e.g. "Done" or its last warning.</summary>
    public string? BootstrapSummary { get; init; }

    /// <summary>The service's address ("...onion"), known before it is published.</summary>
    public string? OnionAddress { get; init; }

    /// <summary>A descriptor was uploaded (HS_DESC UPLOADED): the address is reachable through Tor.</summary>
    public bool Published { get; init; }

    /// <summary>How many times the supervisor restarted tor since the daemon started.</summary>
    public int Restarts { get; init; }

    /// <summary>The last error the supervisor met (tor missing, config refused, stuck bootstrap), if any.</summary>
    public string? LastProblem { get; init; }
}

/// <summary>
/// Where the status writer learns tor's state. The tor supervisor (src/OnionDrop.Tor) provides it through
/// an adapter registered by the tor setup; with <c>--tor none</c> nothing is registered.
/// </summary>
public interface ITorStatusSource
{
    TorStatus Current { get; }

    /// <summary>Raised whenever <see cref="Current"/> changes, so the status file follows at once.</summary>
    event Action? Changed;
}
