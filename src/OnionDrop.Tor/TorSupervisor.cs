using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>
/// Keeps the onion service up. On start it launches tor (or connects to the system tor) and returns only
/// once tor runs and the onion address is known, so a bad setup fails the daemon's start-up with a clear
/// error. Then it follows tor's events: bootstrap progress, "published" once the first round of descriptor uploads is answered (DescriptorPublication), warnings; if
/// tor exits unexpectedly it starts it again with exponential backoff (same key, same address). On
/// shutdown it stops tor cleanly. Its state is <see cref="ITorStatus"/>.
/// </summary>
public sealed class TorSupervisor(TorSupervisorOptions options, ILogger<TorSupervisor> logger) : BackgroundService, ITorStatus
{
    private readonly object _gate = new();
    private TorState _state = TorState.Initial;
    private ITorSession? _session;
    private DescriptorPublication? _publication;   // the current tor run's uploads
    private DateTimeOffset _lastProgressAt = DateTimeOffset.UtcNow;
    private bool _reportedStuck;

    public TorState Current { get { lock (_gate) return _state; } }

    public event Action<TorState>? Changed;

    public async Task<TorState> WaitForAsync(Func<TorState, bool> condition, CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource<TorState>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnChanged(TorState s) { if (condition(s)) done.TrySetResult(s); }
        Changed += OnChanged;
        try
        {
            OnChanged(Current);
            return await done.Task.WaitAsync(cancellationToken);
        }
        finally { Changed -= OnChanged; }
    }

    private void Update(Func<TorState, TorState> change)
    {
        TorState next;
        lock (_gate)
        {
            next = change(_state);
            if (next == _state) return;
            _state = next;
        }
        Changed?.Invoke(next);
    }

    /// <summary>Starts tor and waits until it runs and the onion address is known; throws with a clear message if it cannot.</summary>
    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        _session = await StartSessionAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    private async Task<ITorSession> StartSessionAsync(CancellationToken cancellationToken)
    {
        Update(s => s with { Phase = s.Restarts == 0 ? TorPhase.Starting : TorPhase.Restarting, Published = false, PublishedAt = null, BootstrapProgress = 0, BootstrapSummary = null, Answering = true });
        // A new tor's bootstrap is watched afresh: neither judged by the last one's progress time nor left unreported because that one was.
        _lastProgressAt = DateTimeOffset.UtcNow;
        _reportedStuck = false;
        ITorSession session = options.Mode == TorSupervisorMode.System
            ? await AnsweredAsync($"the system tor at {options.SystemTorControlSocket}", ct => SystemTorSession.StartAsync(options, logger, ct), cancellationToken)
            : await LaunchedTorSession.StartAsync(options, logger, cancellationToken);
        try
        {
            if (session is LaunchedTorSession launched)
            {
                launched.Process.LogLine += line => { if (line.Severity >= TorSeverity.Warn) Update(s => s with { LastWarning = line.Message }); };
                if (launched.Process.LastWarning is { } early) Update(s => s with { LastWarning = early });
            }
            var phase = await AnsweredAsync(Describe(session), async ct =>
            {
                await session.Control.SetEventsAsync(["STATUS_CLIENT", "STATUS_GENERAL", "HS_DESC"], ct);
                return BootstrapStatus.ParsePhase(await session.Control.GetInfoAsync("status/bootstrap-phase", ct));
            }, cancellationToken);
            logger.LogInformation("Onion service address: {OnionAddress}", session.OnionAddress);
            _publication = new DescriptorPublication(session.OnionAddress);
            Update(s => s with { Phase = TorPhase.Bootstrapping, OnionAddress = session.OnionAddress, TorPid = session.TorPid });
            OnBootstrap(phase);
            return session;
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Runs a step of setting up a session within <see cref="TorSupervisorOptions.ConnectTimeout"/>: a stopped or hung tor
    /// fails the start (or this reconnect, tried again with backoff) in words that say so, instead of holding it.
    /// </summary>
    private async Task<T> AnsweredAsync<T>(string tor, Func<CancellationToken, Task<T>> step, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(options.ConnectTimeout);
        try { return await step(deadline.Token); }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new TorStartException($"{tor} is not answering on its control socket: no reply within {options.ConnectTimeout.TotalSeconds:0} s (stopped or hung?)");
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var delay = options.RestartDelay;
        while (!stoppingToken.IsCancellationRequested)
        {
            var session = _session!;
            var startedAt = DateTimeOffset.UtcNow;
            var abandoned = await FollowAsync(session, stoppingToken);
            if (stoppingToken.IsCancellationRequested) return;

            var reason = session.EndReason();
            logger.LogWarning("Tor went away unexpectedly: {Reason}", reason);
            await session.DisposeAsync();
            if (DateTimeOffset.UtcNow - startedAt > TimeSpan.FromMinutes(5)) delay = options.RestartDelay;
            // The exit is the problem now: tor's last warning before it (a relay's closed connection, say) would mislead.
            // (A tor we killed for its silence keeps that reason, which AbandonAsync gave.)
            Update(s => s with { Phase = TorPhase.Restarting, Restarts = s.Restarts + 1, Published = false, PublishedAt = null, TorPid = null,
                LastWarning = abandoned ? s.LastWarning : "tor went away: " + reason });
            // The system tor is not ours to restart: say what the daemon does, lest the operator look for a tor it started.
            var again = options.Mode == TorSupervisorMode.System ? "Reconnecting to the system tor" : "Restarting tor";
            while (true)
            {
                logger.LogInformation("{Again} in {Seconds:0.#} s", again, delay.TotalSeconds);
                try
                {
                    await Task.Delay(delay, stoppingToken);
                    delay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, options.MaxRestartDelay.Ticks));
                    _session = await StartSessionAsync(stoppingToken);
                    break;
                }
                catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested) { return; }
                catch (Exception e)
                {
                    logger.LogError("{Again} failed: {Message}", again, e.Message);
                    Update(s => s with { LastWarning = e.Message });
                }
            }
        }
    }

    /// <summary>
    /// Follows tor's events until it goes away or we stop; also watches for a stalled bootstrap and a tor that stopped
    /// answering. True when it gave up on a silent tor itself.
    /// </summary>
    private async Task<bool> FollowAsync(ITorSession session, CancellationToken stoppingToken)
    {
        using var watchdog = new PeriodicTimer(TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(5).Ticks, options.UnresponsiveAfter.Ticks / 2)));
        var probe = new ControlProbe(session.Control, options.UnresponsiveAfter);
        var tick = watchdog.WaitForNextTickAsync(stoppingToken).AsTask();
        var next = session.Control.Events.ReadAsync(stoppingToken).AsTask();
        while (true)
        {
            var done = await Task.WhenAny(next, tick, session.Ended);
            if (done == session.Ended || stoppingToken.IsCancellationRequested) return false;
            if (done == tick)
            {
                try { if (!await tick) return false; } catch (OperationCanceledException) { return false; }
                CheckStuck();
                if (probe.Tick() is { } silent)
                {
                    await AbandonAsync(session, silent, stoppingToken);
                    return true;
                }
                ReportSilence(session, probe.Waiting);
                tick = watchdog.WaitForNextTickAsync(stoppingToken).AsTask();
                continue;
            }
            TorEvent e;
            try { e = await next; }
            catch (Exception ex) when (ex is OperationCanceledException or System.Threading.Channels.ChannelClosedException)
            {
                await session.Ended.WaitAsync(TimeSpan.FromSeconds(10), stoppingToken).ContinueWith(_ => { });
                return false;
            }
            OnEvent(session, e);
            next = session.Control.Events.ReadAsync(stoppingToken).AsTask();
        }
    }

    /// <summary>
    /// Says so in the state (and so in `oniondrop status`) once a question has waited a quarter of the limit:
    /// a stopped tor serves no one, and the operator should not read "published" for the whole minute before it
    /// is replaced. An answer clears it.
    /// </summary>
    private void ReportSilence(ITorSession session, TimeSpan? waiting)
    {
        var late = waiting >= options.UnresponsiveAfter / 4;
        if (late == !Current.Answering) return;
        if (late)
        {
            var problem = $"{Describe(session)} has not answered on its control connection for {waiting!.Value.TotalSeconds:0} s (stopped or hung?); " +
                          $"it is replaced after {options.UnresponsiveAfter.TotalSeconds:0} s";
            logger.LogWarning("{Problem}", problem);
            Update(s => s with { Answering = false, LastWarning = problem });
        }
        else
        {
            logger.LogInformation("{Tor} answers again", Describe(session));
            Update(s => s with { Answering = true });
        }
    }

    private string Describe(ITorSession session) => session.TorPid is { } pid ? $"tor (pid {pid})" : $"the system tor at {options.SystemTorControlSocket}";

    private async Task AbandonAsync(ITorSession session, TimeSpan silent, CancellationToken stoppingToken)
    {
        var problem = $"{Describe(session)} did not answer on its control connection for {silent.TotalSeconds:0} s (stopped or hung)";
        logger.LogError("{Problem}: {Action}", problem, session.TorPid is null ? "reconnecting" : "killing it to start a new one");
        Update(s => s with { LastWarning = problem });
        await session.AbandonAsync();
        try { await session.Ended.WaitAsync(TimeSpan.FromSeconds(10), stoppingToken); }
        catch (Exception e) when (e is TimeoutException or OperationCanceledException) { }
    }

    private void OnEvent(ITorSession session, TorEvent e)
    {
        switch (e)
        {
            case StatusEvent { Bootstrap: { } bootstrap }:
                OnBootstrap(bootstrap);
                break;
            case StatusEvent { Severity: >= TorSeverity.Warn } status:
                var text = $"{status.Action} {string.Join(' ', status.Arguments.Select(a => $"{a.Key}={a.Value}"))}".Trim();
                logger.LogWarning("tor status: {Status}", text);
                Update(s => s with { LastWarning = text });
                break;
            case HsDescEvent hs when hs.Address + ".onion" == session.OnionAddress:
                if (_publication is null) break;
                if (_publication.Observe(hs))
                {
                    logger.LogInformation("Onion service published: {OnionAddress}", session.OnionAddress);
                    Update(s => s with { Published = true, PublishedAt = s.PublishedAt ?? DateTimeOffset.UtcNow });
                }
                else if (hs.Action is "UPLOADED" or "FAILED" && !_publication.Published)
                    logger.LogDebug("Descriptor upload to {HsDir}: {Action} {Reason}; {Unanswered} upload(s) still unanswered",
                        hs.HsDir, hs.Action, hs.Reason, _publication.Unanswered);
                break;
        }
    }

    private void OnBootstrap(BootstrapStatus bootstrap)
    {
        var before = Current;
        if (bootstrap.Progress != before.BootstrapProgress)
        {
            _lastProgressAt = DateTimeOffset.UtcNow;
            _reportedStuck = false;
            // In Launch mode tor's own log line says the same thing; the system tor's log is not ours to forward.
            logger.Log(options.Mode == TorSupervisorMode.System ? LogLevel.Information : LogLevel.Debug,
                "Tor bootstrapped {Progress}%: {Summary}", bootstrap.Progress, bootstrap.Summary);
        }
        if (bootstrap.Problem is { } problem) logger.LogWarning("Tor bootstrap problem: {Problem}", problem);
        Update(s => s with
        {
            Phase = bootstrap.IsDone ? TorPhase.Running : TorPhase.Bootstrapping,
            BootstrapProgress = bootstrap.Progress,
            BootstrapSummary = bootstrap.Summary,
            LastWarning = bootstrap.Problem ?? s.LastWarning,
        });
    }

    private void CheckStuck()
    {
        var state = Current;
        if (state.Phase != TorPhase.Bootstrapping || _reportedStuck) return;
        var stalled = DateTimeOffset.UtcNow - _lastProgressAt;
        if (stalled < options.BootstrapStuckAfter) return;
        _reportedStuck = true;
        logger.LogError("Tor bootstrap is stuck at {Progress}% ({Summary}) for {Seconds:0} s; tor's last warning: {Warning}",
            state.BootstrapProgress, state.BootstrapSummary, stalled.TotalSeconds, state.LastWarning ?? "none (is the network reachable?)");
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_session is { } session)
        {
            _session = null;
            await session.StopAsync();
            await session.DisposeAsync();
            logger.LogInformation("Tor stopped");
        }
        Update(s => s with { Phase = TorPhase.Stopped, Published = false, TorPid = null });
    }

    public override void Dispose()
    {
        _session?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        base.Dispose();
    }
}
