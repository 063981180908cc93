using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace OnionDrop.Storage;

/// <summary>Whose acknowledgement makes a submission deletable.</summary>
public enum AcknowledgementQuorum
{
    /// <summary>The first journalist holding a verified copy is enough.</summary>
    First,
    /// <summary>Every name in <see cref="SealedBlobStoreOptions.Journalists"/> must have acknowledged.</summary>
    All,
}

/// <summary>Retention and housekeeping of a <see cref="SealedBlobStore"/>.</summary>
public sealed record SealedBlobStoreOptions
{
    public AcknowledgementQuorum DeleteAfter { get; init; } = AcknowledgementQuorum.First;

    /// <summary>Pull names (<c>oniondrop pull --as NAME</c>) that count toward <see cref="AcknowledgementQuorum.All"/>.</summary>
    public IReadOnlyList<string> Journalists { get; init; } = [];

    /// <summary>Days an acknowledged blob is kept before deletion; 0 deletes it at the acknowledgement.</summary>
    public int KeepDaysAfterAcknowledgement { get; init; }

    /// <summary>Unfetched submissions older than this many days are deleted (with a warning); null keeps them.</summary>
    public int? MaxUnfetchedDays { get; init; }

    /// <summary>
    /// How long <see cref="SealedBlobStore.Open"/> waits for daemon.lock before giving up; meanwhile a pull served
    /// directly steps aside (<see cref="DataDirectoryLock.IsWanted"/>).
    /// </summary>
    public TimeSpan LockWait { get; init; } = TimeSpan.Zero;

    /// <summary>What this process is, named in daemon.lock while it holds the store, for a process waiting for it to say.</summary>
    public StoreHolder Holder { get; init; } = StoreHolder.Unknown;

    public ILogger Logger { get; init; } = NullLogger.Instance;

    /// <summary>The clock that decides "today" (arrival day, retention); tests move it.</summary>
    public TimeProvider Clock { get; init; } = TimeProvider.System;

    /// <summary>
    /// Empty files made ahead of time, at open and by each <see cref="SealedBlobStore.RefillSpareFiles"/>, for
    /// uploads to write into: a blob's birth time (which nothing can change) then says when they were made, not
    /// when its upload began. When they run out, uploads make fresh files until the next refill. 0: none.
    /// </summary>
    public int SpareFiles { get; init; } = 32;

    /// <summary>Throws with a one-line reason when the combination makes no sense.</summary>
    public void Validate()
    {
        if (KeepDaysAfterAcknowledgement < 0) throw new ArgumentException("KeepDaysAfterAcknowledgement must be 0 or more");
        if (SpareFiles < 0) throw new ArgumentException("SpareFiles must be 0 or more");
        if (MaxUnfetchedDays is < 1) throw new ArgumentException("MaxUnfetchedDays must be 1 or more (or unset)");
        if (DeleteAfter == AcknowledgementQuorum.All && Journalists.Count == 0)
            throw new ArgumentException("DeleteAfter=All needs the list of Journalists whose acknowledgement counts");
        foreach (var name in Journalists)
            if (!IsValidJournalistName(name)) throw new ArgumentException($"journalist name '{name}' is not 1-64 of a-z A-Z 0-9 . _ -");
    }

    public static bool IsValidJournalistName(string? name) =>
        name is { Length: >= 1 and <= 64 } && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');
}
