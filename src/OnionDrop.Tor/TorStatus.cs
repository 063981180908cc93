namespace OnionDrop.Tor;

/// <summary>Where the supervised tor is in its life.</summary>
/// <remarks>With OnionDrop:Tor None the supervisor is never started and has no phase to report: status.json's "tor" is null.</remarks>
public enum TorPhase
{
    /// <summary>Starting tor or connecting to it.</summary>
    Starting,
    /// <summary>Tor runs and is bootstrapping into the network.</summary>
    Bootstrapping,
    /// <summary>Tor is bootstrapped (100%); see <see cref="TorState.Published"/> for the service.</summary>
    Running,
    /// <summary>Tor went away unexpectedly; the supervisor is waiting to start it again.</summary>
    Restarting,
    /// <summary>Stopped on shutdown.</summary>
    Stopped,
}

/// <summary>
/// A snapshot of the supervised tor, for the status file, systemd's status text and tests.
/// </summary>
/// <param name="OnionAddress">"xxx.onion", known as soon as tor has the service key (before publication).</param>
/// <param name="Published">Since tor last (re)started, every HSDir it uploaded this address's descriptor to has answered, at least one accepting it (<see cref="DescriptorPublication"/>).</param>
/// <param name="LastWarning">tor's most recent warning (log, bootstrap problem or status event), if any.</param>
/// <param name="Restarts">How many times the supervisor restarted tor after an unexpected exit.</param>
public sealed record TorState(
    TorPhase Phase,
    int BootstrapProgress,
    string? BootstrapSummary,
    string? OnionAddress,
    bool Published,
    DateTimeOffset? PublishedAt,
    string? LastWarning,
    int Restarts,
    int? TorPid)
{
    public static TorState Initial { get; } = new(TorPhase.Starting, 0, null, null, false, null, null, 0, null);

    /// <summary>
    /// False while a control question has gone unanswered for a quarter of
    /// <see cref="TorSupervisorOptions.UnresponsiveAfter"/>: tor is stopped or hung, and serves no one, well before
    /// the supervisor gives up on it and starts another.
    /// </summary>
    public bool Answering { get; init; } = true;

    /// <summary>One line for humans and systemd's STATUS=.</summary>
    public string Describe() => Phase switch
    {
        TorPhase.Stopped => "tor stopped",
        TorPhase.Restarting => $"tor restarting (restart {Restarts})" + (LastWarning is null ? "" : $": {LastWarning}"),
        _ when !Answering => "tor not answering" + (LastWarning is null ? "" : $": {LastWarning}"),
        _ when Published => $"onion service published at {OnionAddress}",
        TorPhase.Starting => "starting tor",
        _ => $"tor bootstrapping {BootstrapProgress}%" + (BootstrapSummary is null ? "" : $" ({BootstrapSummary})") +
             (OnionAddress is null ? "" : $", publishing {OnionAddress}"),
    };
}

/// <summary>The supervised tor's current state, as read by the status file and systemd notifications.</summary>
public interface ITorStatus
{
    TorState Current { get; }

    /// <summary>Raised after every change, with the new state (on the supervisor's thread: keep handlers short).</summary>
    event Action<TorState>? Changed;

    /// <summary>Completes with the first state that satisfies <paramref name="condition"/> (the current one included).</summary>
    Task<TorState> WaitForAsync(Func<TorState, bool> condition, CancellationToken cancellationToken = default);
}
