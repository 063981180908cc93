using OnionDrop.Tor;

namespace OnionDrop.Daemon.Status;

/// <summary>What the status file says about tor: the supervisor's <see cref="TorState"/>, flattened for JSON.</summary>
public sealed record TorStatus
{
    /// <summary>The supervisor's phase: "starting", "bootstrapping", "running", "restarting", "stopped".</summary>
    public string Phase { get; init; } = "unknown";

    /// <summary>A tor process is up (Launch) or the system tor answers (System).</summary>
    public bool Running { get; init; }

    /// <summary>The launched tor's pid; null for the system tor or when none runs.</summary>
    public int? Pid { get; init; }

    /// <summary>Bootstrap progress 0-100 (control-spec STATUS_CLIENT BOOTSTRAP PROGRESS=).</summary>
    public int BootstrapPercent { get; init; }

    /// <summary>Tor's own words for the bootstrap phase, e.g. "Done".</summary>
    public string? BootstrapSummary { get; init; }

    /// <summary>The service's address ("...onion"), known before it is published.</summary>
    public string? OnionAddress { get; init; }

    /// <summary>Since tor last started, every HSDir it uploaded the descriptor to has answered, at least one accepting it (see DescriptorPublication): reachable through Tor.</summary>
    public bool Published { get; init; }

    public DateTimeOffset? PublishedAt { get; init; }

    /// <summary>How many times the supervisor restarted tor since the daemon started.</summary>
    public int Restarts { get; init; }

    /// <summary>False while tor leaves a control question unanswered (stopped or hung), before the supervisor replaces it. True in files of daemons that did not say.</summary>
    public bool Answering { get; init; } = true;

    /// <summary>Tor's most recent warning or the supervisor's last problem, if any.</summary>
    public string? LastProblem { get; init; }

    public static TorStatus From(TorState s) => new()
    {
        Phase = s.Phase.ToString().ToLowerInvariant(),
        Running = s.Phase is TorPhase.Starting or TorPhase.Bootstrapping or TorPhase.Running && (s.TorPid is not null || s.Phase != TorPhase.Starting),
        Pid = s.TorPid,
        BootstrapPercent = s.BootstrapProgress,
        BootstrapSummary = s.BootstrapSummary,
        OnionAddress = s.OnionAddress,
        Published = s.Published,
        PublishedAt = s.PublishedAt,
        Restarts = s.Restarts,
        Answering = s.Answering,
        LastProblem = s.LastWarning,
    };
}
