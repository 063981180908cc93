using OnionDrop.Files;

namespace OnionDrop.Daemon.Status;

/// <summary>`oniondrop status` exit codes: 0 healthy, otherwise the first thing wrong, most serious first.</summary>
public enum HealthCode
{
    Healthy = 0,
    /// <summary>The status file is missing or unreadable (also the code for a usage error).</summary>
    Unreadable = 1,
    /// <summary>No daemon: it stopped, its pid is gone, or it stopped rewriting the file.</summary>
    DaemonNotRunning = 2,
    TorNotRunning = 3,
    /// <summary>Tor runs but the onion service is not published yet: bootstrapping, or no network.</summary>
    NotPublished = 4,
    /// <summary>The daemon runs but something needs the operator: store unreadable, disk nearly full.</summary>
    Degraded = 5,
}

public sealed record HealthVerdict(HealthCode Code, string Reason)
{
    public bool Healthy => Code == HealthCode.Healthy;
}

/// <summary>Judges a status document against the present: is the pid alive, is the file fresh, is tor up.</summary>
public static class StatusHealth
{
    /// <summary>Below this much free space a large upload may fail; the operator should know before a source does.</summary>
    public const long LowDiskBytes = 1L << 30;

    /// <summary>A file not rewritten for this many intervals (at least 15 s) is stale: the daemon is hung or gone.</summary>
    public const int StaleAfterIntervals = 3;

    public static TimeSpan StaleAfter(DaemonStatus s) => TimeSpan.FromSeconds(Math.Max(15, StaleAfterIntervals * s.IntervalSeconds));

    /// <param name="diskNow">
    /// The data directory's disk as it is now, asked for only when the file is stale while its daemon runs: a full
    /// disk is what usually keeps the daemon from writing it, and the file itself cannot say so then.
    /// </param>
    public static HealthVerdict Evaluate(DaemonStatus s, DateTimeOffset now, Func<int, bool> isAlive, Func<DiskStatus?>? diskNow = null)
    {
        var age = now - s.UpdatedAt;
        if (s.State != "running")
            return new(HealthCode.DaemonNotRunning, $"daemon not running: it stopped at {s.UpdatedAt:u}");
        if (!isAlive(s.Pid))
            return new(HealthCode.DaemonNotRunning, $"daemon not running: pid {s.Pid} is gone (status last written {Ago(age)})");
        if (age > StaleAfter(s))
        {
            var stale = $"daemon pid {s.Pid} is running but not writing its status file (stale: last written {Ago(age)})";
            if (diskNow?.Invoke() is { } disk && disk.FreeBytes < LowDiskBytes)
                return new(HealthCode.Degraded, $"low disk: {ByteSize.Format(disk.FreeBytes)} free under {disk.Path}; {stale}");
            return new(HealthCode.DaemonNotRunning, stale + ": hung?");
        }

        if (s.TorMode != "none")
        {
            var tor = s.Tor;
            if (tor is null)
                return new(HealthCode.TorNotRunning, "tor not running: the supervisor has not reported yet");
            if (!tor.Running || (tor.Pid is int torPid && !isAlive(torPid)))
                return new(HealthCode.TorNotRunning,
                    "tor not running" + (tor.Pid is int p && !isAlive(p) ? $" (pid {p} is gone)" : "") +
                    (tor.LastProblem is { } problem ? ": " + problem : ""));
            if (!tor.Answering)
                return new(HealthCode.TorNotRunning, "tor not answering" + (tor.LastProblem is { } silence ? ": " + silence : ""));
            if (!tor.Published)
                return new(HealthCode.NotPublished, tor.BootstrapPercent < 100
                    ? $"onion service not published: tor is waiting for the network (bootstrap {tor.BootstrapPercent}%" +
                      (tor.BootstrapSummary is { } summary ? ": " + summary : "") +
                      // Stuck while relays refuse it (a firewall, a censored network), tor's complaint is the clue.
                      (tor.LastProblem is { } last ? "; tor's last problem: " + last : "") + ")"
                    : "onion service not published yet: tor is bootstrapped, descriptor not uploaded");
        }

        if (s.Problems.Count > 0)
            return new(HealthCode.Degraded, s.Problems[0]);
        // A daemon that writes asOf takes its figures at start and daily, and says a low disk in Problems at once; an older one did neither.
        if (s.Disk.AsOf is null && s.Disk.FreeBytes < LowDiskBytes)
            return new(HealthCode.Degraded, $"low disk: {ByteSize.Format(s.Disk.FreeBytes)} free under {s.Disk.Path}");
        return new(HealthCode.Healthy, "healthy");
    }

    public static string Ago(TimeSpan t) =>
        t < TimeSpan.Zero ? "in the future (clock skew?)"
        : t.TotalSeconds < 90 ? $"{t.TotalSeconds:0}s ago"
        : t.TotalMinutes < 90 ? $"{t.TotalMinutes:0} min ago"
        : t.TotalHours < 48 ? $"{t.TotalHours:0} h ago"
        : $"{t.TotalDays:0} days ago";

    /// <summary>Whether a process with this pid exists (in our pid namespace).</summary>
    public static bool ProcessExists(int pid)
    {
        if (pid <= 0) return false;
        try
        {
            // /proc/PID/stat is "pid (comm) S ...": a zombie (Z) or dead (X) process is not running.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..].TrimStart();
            return state.Length > 0 && state[0] is not ('Z' or 'X');
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return Directory.Exists($"/proc/{pid}"); }
    }
}
