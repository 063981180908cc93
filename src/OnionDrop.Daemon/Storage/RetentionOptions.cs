using OnionDrop.Storage;

namespace OnionDrop.Daemon.Storage;

/// <summary>Section "OnionDrop:Retention": what happens to submissions once journalists have pulled them.</summary>
public sealed class RetentionOptions
{
    /// <summary>First: delete once any journalist holds a verified copy. All: once every name in <see cref="Journalists"/> does.</summary>
    public AcknowledgementQuorum DeleteAfter { get; set; } = AcknowledgementQuorum.First;

    /// <summary>Names given to <c>oniondrop pull --as NAME</c> in each journalist's authorized_keys line.</summary>
    public List<string> Journalists { get; set; } = [];

    /// <summary>0 (default): delete at the acknowledgement. N: keep acknowledged blobs N more days.</summary>
    public int KeepDaysAfterAcknowledgement { get; set; }

    /// <summary>Delete submissions nobody fetched within this many days (logged as a warning). Unset: keep them.</summary>
    public int? MaxUnfetchedDays { get; set; }

    /// <summary>How often the daemon applies retention and, when something was deleted, compacts catalog.db.</summary>
    public TimeSpan CheckInterval { get; set; } = TimeSpan.FromHours(1);

    public SealedBlobStoreOptions ToStoreOptions() => new()
    {
        DeleteAfter = DeleteAfter,
        Journalists = Journalists,
        KeepDaysAfterAcknowledgement = KeepDaysAfterAcknowledgement,
        MaxUnfetchedDays = MaxUnfetchedDays,
    };
}
