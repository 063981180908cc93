using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Files;
using OnionDrop.Storage;
using OnionDrop.Tor;

namespace OnionDrop.Daemon.Status;

/// <summary>
/// Keeps DATA/status.json current: rewritten atomically (temp file, rename) every few seconds and at once
/// when tor's state changes, and marked "stopped" on a clean shutdown. `oniondrop status` reads it, so
/// asking for status never touches the network or the catalog's lock.
/// </summary>
public sealed class StatusFileWriter : BackgroundService, IHostedLifecycleService
{
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(5);

    private readonly OnionDropOptions options;
    private readonly IServiceProvider services;
    private readonly ITorStatus? tor;
    private readonly ILogger<StatusFileWriter> log;
    private readonly TimeProvider clock;
    private readonly SemaphoreSlim changed = new(0);
    private readonly DateTimeOffset startedAt;
    private readonly string path;
    private (SubmissionsStatus? Submissions, DiskStatus Disk)? figures;   // as last taken, on figuresDay
    private DateOnly figuresDay;
    private string? lastProblem;
    private bool lowDiskLogged, writeFailing;

    public StatusFileWriter(IOptions<OnionDropOptions> options, IServiceProvider services, ILogger<StatusFileWriter> log,
        TimeProvider? clock = null)
    {
        this.options = options.Value;
        this.services = services;
        this.log = log;
        this.clock = clock ?? TimeProvider.System;
        tor = this.options.Tor == TorMode.None ? null : services.GetService<ITorStatus>();
        startedAt = this.clock.GetUtcNow();
        path = Path.Combine(this.options.DataDir, DaemonStatus.FileName);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (tor is not null) tor.Changed += OnTorChanged;
        else if (options.Tor != TorMode.None) log.LogWarning("No tor supervisor registered: status will report tor as not running");
        try
        {
            log.LogInformation("Status file {Path}, rewritten every {Seconds}s", path, Interval.TotalSeconds);
            while (!stoppingToken.IsCancellationRequested)
            {
                TryWrite(Snapshot("running"));
                // Wake on the interval or on a change of tor's state, whichever comes first.
                try { await changed.WaitAsync(Interval, stoppingToken); }
                catch (OperationCanceledException) { break; }
            }
        }
        finally
        {
            if (tor is not null) tor.Changed -= OnTorChanged;
        }
    }

    /// <summary>
    /// The last word, "stopped", once every part of the daemon has stopped: hosted services stop in reverse order of
    /// registration, this one first, so written at its own StopAsync the file said tor was still running (pid and all)
    /// beside "stopped".
    /// </summary>
    public Task StoppedAsync(CancellationToken cancellationToken)
    {
        try { Write(Snapshot("stopped")); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { log.LogWarning("Could not mark the status file stopped: {Error}", e.Message); }
        return Task.CompletedTask;
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void OnTorChanged(TorState _) => changed.Release();

    /// <summary>
    /// The figures that move with each submission (how many wait, their bytes, the free disk) are published as
    /// taken at start and then once a day (UTC), as the catalog dates a submission: refreshed every few seconds,
    /// or even hourly, they told anyone who can read or collect status.json or the journal when each submission
    /// arrived, and its size. Whether the store is readable and whether the disk is low show at once.
    /// </summary>
    internal DaemonStatus Snapshot(string state)
    {
        var now = clock.GetUtcNow();
        var problems = new List<string>();

        SubmissionsStatus? submissions = null;
        try
        {
            var store = services.GetService<ISealedBlobStore>();
            if (store is null) problems.Add("store unavailable: no sealed blob store registered");
            else
            {
                var stats = store.GetStats();
                submissions = new SubmissionsStatus(stats.Waiting, stats.WaitingBytes, stats.OldestWaiting, null);
                // Kept at the last start because the catalog did not list them (an older catalog.db put back): only the operator can say.
                if (stats.Orphaned > 0)
                    problems.Add($"{stats.Orphaned} sealed file(s) in {Path.Combine(options.DataDir, SealedBlobStore.OrphanedDirectoryName)} that the catalog " +
                                 "does not list: stop the daemon and run oniondrop recover to enter them, or delete them");
            }
        }
        catch (Exception e)
        {
            problems.Add("store unreadable: " + e.Message);
        }

        var disk = DiskStatus.Of(options.DataDir);

        LogChanges(disk, problems);
        if (disk.FreeBytes < StatusHealth.LowDiskBytes)   // after LogChanges, which says so in its own words
            problems.Add($"low disk: under {ByteSize.Format(StatusHealth.LowDiskBytes)} free under {disk.Path}");

        var today = DateOnly.FromDateTime(now.UtcDateTime);
        // Also when the store turns readable or unreadable: the operator must not wait a day for the figures back.
        if (figures is null || today != figuresDay || (figures.Value.Submissions is null) != (submissions is null))
        {
            figures = (submissions is null ? null : submissions with { AsOf = now }, disk with { AsOf = now });
            figuresDay = today;
            LogCounts(figures.Value.Submissions);
        }
        submissions = figures.Value.Submissions is { } taken
            ? taken with { OldestWaitingDays = taken.OldestWaitingSince is { } day ? today.DayNumber - day.DayNumber : null }
            : null;
        disk = figures.Value.Disk;

        return new DaemonStatus
        {
            State = state,
            Pid = Environment.ProcessId,
            StartedAt = startedAt,
            UpdatedAt = now,
            IntervalSeconds = (int)Interval.TotalSeconds,
            TorMode = options.Tor.ToString().ToLowerInvariant(),
            Tor = options.Tor == TorMode.None ? null : (tor is null ? new TorStatus { LastProblem = "no tor supervisor registered" } : TorStatus.From(tor.Current)),
            Submissions = submissions,
            Disk = disk,
            Listen = options.Listen,
            Problems = problems,
        };
    }

    /// <summary>Operator log: the counts as the figures are taken (daily), never per submission.</summary>
    private void LogCounts(SubmissionsStatus? submissions)
    {
        if (submissions is null) return;
        log.LogInformation("Submissions waiting: {Waiting} ({Size}), oldest since {Oldest}", submissions.Waiting,
            ByteSize.Format(submissions.WaitingBytes), submissions.OldestWaitingSince?.ToString("yyyy-MM-dd") ?? "-");
    }

    /// <summary>Operator log: problems and low disk when they start and end.</summary>
    private void LogChanges(DiskStatus disk, List<string> problems)
    {
        var problem = problems.FirstOrDefault();
        if (problem != lastProblem)
        {
            if (problem is not null) log.LogError("{Problem}", problem);
            else log.LogInformation("Store readable again");
            lastProblem = problem;
        }
        var low = disk.FreeBytes < StatusHealth.LowDiskBytes;
        if (low != lowDiskLogged)
        {
            if (low) log.LogWarning("Low disk: {Free} free under {Path}", ByteSize.Format(disk.FreeBytes), disk.Path);
            else log.LogInformation("Disk space back: {Free} free", ByteSize.Format(disk.FreeBytes));
            lowDiskLogged = low;
        }
    }

    /// <summary>
    /// A status file that cannot be written (a full disk) goes stale, and the daemon goes on serving: said once
    /// when it starts failing and once when it is written again. (Thrown out of the loop, the error stopped the
    /// whole daemon, with exit code 0, which systemd's Restart=on-failure does not restart.)
    /// </summary>
    private void TryWrite(DaemonStatus status)
    {
        try
        {
            Write(status);
            if (writeFailing) log.LogInformation("Status file written again");
            writeFailing = false;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            if (!writeFailing) log.LogError("Cannot write the status file, which goes stale until this passes: {Error}", e.Message);
            writeFailing = true;
            try { File.Delete(path + ".tmp"); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>Temp file created 0600, written, renamed over the old one: readers see the old or the new file, never half.</summary>
    internal void Write(DaemonStatus status)
    {
        Directory.CreateDirectory(options.DataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var tmp = path + ".tmp";
        File.Delete(tmp);
        using (var f = new FileStream(tmp, new FileStreamOptions
        {
            Mode = FileMode.CreateNew,
            Access = FileAccess.Write,
            UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        }))
        using (var w = new StreamWriter(f))
            w.Write(status.ToJson());
        File.Move(tmp, path, overwrite: true);
    }
}
