using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace OnionDrop.Daemon.Status;

/// <summary>
/// The document the daemon keeps in DATA/status.json (0600) and `oniondrop status` reads. Versioned; fields
/// are only ever added. Deliberately coarse about submissions: a count, their bytes and the oldest arrival
/// day, nothing per submission, and these (with the free disk, which moves with them) taken only daily.
/// </summary>
public sealed record DaemonStatus
{
    public const string FileName = "status.json";
    public const int CurrentVersion = 1;

    public int Version { get; init; } = CurrentVersion;

    /// <summary>"running" while the daemon serves, "stopped" after a clean shutdown.</summary>
    public required string State { get; init; }

    public required int Pid { get; init; }
    public required DateTimeOffset StartedAt { get; init; }
    public required DateTimeOffset UpdatedAt { get; init; }

    /// <summary>How often the daemon rewrites the file; a reader treats it as stale after a few of these.</summary>
    public required int IntervalSeconds { get; init; }

    /// <summary>"launch", "system" or "none".</summary>
    public required string TorMode { get; init; }

    /// <summary>Null when <see cref="TorMode"/> is "none" or the supervisor has not reported yet.</summary>
    public TorStatus? Tor { get; init; }

    /// <summary>Null when the store could not be read (see <see cref="Problems"/>).</summary>
    public SubmissionsStatus? Submissions { get; init; }

    public required DiskStatus Disk { get; init; }

    /// <summary>The loopback listener, if configured ("127.0.0.1:PORT").</summary>
    public string? Listen { get; init; }

    /// <summary>What the daemon itself found wrong (store unreadable, ...); empty when nothing.</summary>
    public IReadOnlyList<string> Problems { get; init; } = [];

    public static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        // Read by operators and tools, never embedded in HTML: keep '+' and non-ASCII readable.
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    public static DaemonStatus Parse(string json) =>
        JsonSerializer.Deserialize<DaemonStatus>(json, Json) ?? throw new JsonException("empty status document");
}

/// <param name="Waiting">Committed submissions not yet fetched by every journalist who must fetch them.</param>
/// <param name="OldestWaitingSince">The day the oldest waiting submission arrived (the store keeps days only).</param>
/// <param name="OldestWaitingDays">Whole days since then, for monitoring thresholds.</param>
public sealed record SubmissionsStatus(int Waiting, long WaitingBytes, DateOnly? OldestWaitingSince, int? OldestWaitingDays)
{
    /// <summary>When these figures were taken: at start, then once a day (UTC), so that they date a submission no closer than the catalog does.</summary>
    public DateTimeOffset? AsOf { get; init; }
}

/// <param name="Path">The data directory whose filesystem this is.</param>
public sealed record DiskStatus(string Path, long FreeBytes, long TotalBytes)
{
    /// <summary>The file system under <paramref name="path"/> now (statvfs), as the daemon and `oniondrop status` both measure it.</summary>
    public static DiskStatus Of(string path)
    {
        var drive = new DriveInfo(path);
        return new DiskStatus(path, drive.AvailableFreeSpace, drive.TotalSize);
    }

    /// <summary>When these figures were taken (as <see cref="SubmissionsStatus.AsOf"/>); a low disk shows in Problems at once.</summary>
    public DateTimeOffset? AsOf { get; init; }
}
