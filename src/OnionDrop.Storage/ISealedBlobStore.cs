namespace OnionDrop.Storage;

/// <summary>
/// A catalog entry's state (an upload still being written has no entry: it is only a blobs/*.partial file).
/// Committed: visible, waiting to be pulled. Acknowledged: the deletion policy's quorum holds a verified copy (kept
/// only if the operator keeps acknowledged blobs for some days). Damaged: the catalog entry's file was found missing
/// or short at open; never offered to pull, kept so the operator sees it. Stored by name in the catalog.
/// </summary>
public enum SubmissionState { Committed, Acknowledged, Damaged }

/// <summary>A catalog entry. Deliberately nothing about the source: no address, agent, name or exact time.</summary>
public sealed record SubmissionRecord(
    string Id,
    long Sequence,
    SubmissionState State,
    long Size,
    string Sha256Hex,
    DateOnly ArrivedOn,
    IReadOnlyCollection<string> AcknowledgedBy);

/// <param name="Orphaned">sealed files kept aside at open because the catalog did not list them, waiting for the operator (recover, or delete)</param>
public sealed record StoreStats(int Waiting, long WaitingBytes, DateOnly? OldestWaiting, int Orphaned = 0);

/// <summary>
/// A commit that failed after LiteDB may have recorded it (in its checkpoint, or our fsyncs after it): whether the
/// entry exists shows only when the catalog is next read. The upload reports failure, but keeps its file, so
/// that an entry never lacks one; the sweep at the next open deletes the file if the entry is not there.
/// </summary>
public sealed class CommitOutcomeUnknownException(Exception cause)
    : IOException($"the catalog may or may not have recorded the submission: {cause.Message}", cause);

/// <summary>catalog.db is gone (or never recorded anything) while blobs/ holds sealed submissions: an empty catalog would sweep them all away.</summary>
public sealed class CatalogMissingException(string dataDir, int sealedBlobs)
    : IOException($"{Path.Combine(dataDir, SealedBlobStore.CatalogFileName)} is missing or empty, but blobs/ holds {sealedBlobs} sealed submission(s): " +
                  "refusing to start with an empty catalog, which would delete them as orphans. Put catalog.db back from a backup " +
                  "of the data directory, or make a new one from the blobs with `oniondrop recover` (docs/storage.md, \"Recovery\")");

/// <summary>LiteDB's engine stopped over an error of its own (not a full disk): it refuses every call until reopened.</summary>
internal sealed class CatalogFailedException(string message, Exception cause) : IOException(message, cause);

/// <summary>
/// catalog.db is there but cannot be read (a disk error, a truncated or overwritten file, a bad copy put back): the
/// store does not open, and deletes nothing. Said in one line that names the file and the ways out.
/// </summary>
public sealed class CatalogDamagedException(string dataDir, int sealedBlobs, Exception cause)
    : IOException($"{Path.Combine(dataDir, SealedBlobStore.CatalogFileName)} is damaged and cannot be read ({OneLine(cause.Message)}); " +
                  $"blobs/ holds {sealedBlobs} sealed submission(s), none deleted. Put catalog.db back from a backup of the data directory, " +
                  $"or move catalog.db and catalog-log.db out of {dataDir} and make a new catalog from the blobs with `oniondrop recover` " +
                  "(docs/storage.md, \"Recovery\")", cause)
{
    /// <summary>
    /// Whether an exception from opening the catalog means its file cannot be read: anything LiteDB throws, or its
    /// reading of garbage throws (a bad encoding, a date out of range...), but not a missing permission, a full disk,
    /// or another process holding the store.
    /// </summary>
    internal static bool IsDamage(Exception e) => e switch
    {
        CatalogFailedException or LiteDB.LiteException => true,
        IOException or UnauthorizedAccessException or ObjectDisposedException or OutOfMemoryException => false,
        _ => true,
    };

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}

/// <summary>
/// Where sealed submissions live. The one implementation keeps a LiteDB catalog and one fsynced file per
/// body; another layout (an object store, say) would be another implementation of this interface.
/// A submission is visible to List/Open only once committed.
/// </summary>
public interface ISealedBlobStore : IDisposable
{
    /// <summary>Starts a submission: a fresh random id (also the source's receipt reference) and an exclusive 0600 temp file.</summary>
    ISubmissionWriter BeginSubmission();

    /// <summary>Committed submissions in pull order (ascending sequence), optionally only those after a sequence.</summary>
    IReadOnlyList<SubmissionRecord> ListCommitted(long afterSequence = 0);

    /// <summary>What <paramref name="recipient"/> still has to pull: committed and not yet acknowledged by it, in pull order.</summary>
    IReadOnlyList<SubmissionRecord> ListWaiting(string recipient);

    SubmissionRecord? Find(string id);

    /// <summary>Opens the committed ciphertext for reading.</summary>
    Stream OpenSealed(string id);

    /// <summary>Records that <paramref name="recipient"/> holds a verified copy; applies the deletion policy.</summary>
    SubmissionRecord? Acknowledge(string id, string recipient);

    /// <summary>Acknowledges a batch at once (one catalog transaction); results in the order of <paramref name="ids"/>, null where unknown.</summary>
    IReadOnlyList<SubmissionRecord?> Acknowledge(IReadOnlyList<string> ids, string recipient);

    /// <summary>The batch <see cref="Acknowledge(IReadOnlyList{string}, string)"/>, waiting for the catalog without holding a thread meanwhile.</summary>
    Task<IReadOnlyList<SubmissionRecord?>> AcknowledgeAsync(IReadOnlyList<string> ids, string recipient);

    StoreStats GetStats();
}

/// <summary>One submission being written. Disposing without <see cref="CommitAsync"/> deletes every piece of it.</summary>
public interface ISubmissionWriter : IAsyncDisposable
{
    string Id { get; }

    /// <summary>Sequential ciphertext sink; its bytes are hashed as they pass.</summary>
    Stream Ciphertext { get; }

    /// <summary>fsync file, rename, fsync directory, then commit the catalog entry. Only then is it visible.</summary>
    Task<SubmissionRecord> CommitAsync(CancellationToken cancellationToken = default);
}
