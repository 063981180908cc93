using System.Collections.Concurrent;
using System.Globalization;
using LiteDB;
using Microsoft.Extensions.Logging;
using OnionDrop.Files;

namespace OnionDrop.Storage;

/// <summary>
/// The sealed blob store (docs/storage.md): a LiteDB catalog (DATA/catalog.db) that is the single source of
/// truth, and one fsynced ciphertext file per submission (DATA/blobs/ID.sealed). The process that opens it
/// holds DATA/daemon.lock, so it is the catalog's only writer.
/// Thread-safe: uploads stream in parallel, each into its own file; the catalog is touched only to commit,
/// acknowledge and clean up, under one short lock.
/// </summary>
public sealed class SealedBlobStore : ISealedBlobStore
{
    public const string CatalogFileName = "catalog.db";
    /// <summary>What LiteDB names its log beside <see cref="CatalogFileName"/> (a rebuild's files: <see cref="RebuildFiles"/>).</summary>
    private const string CatalogLogFileName = "catalog-log.db";
    public const string BlobsDirectoryName = "blobs";
    public const string SparesDirectoryName = "spare";
    /// <summary>Sealed blobs found in blobs/ without a catalog entry: kept here, never deleted (see <see cref="Sweep"/>).</summary>
    public const string OrphanedDirectoryName = "orphaned";
    internal const string SealedExtension = ".sealed";
    internal const string PartialExtension = ".partial";

    private const UnixFileMode PrivateDirectory = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
    private const UnixFileMode PrivateFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    private readonly DataDirectoryLock _lock;
    private volatile Catalog _catalog;       // replaced as a whole after an I/O failure: see Use
    /// <summary>Free space below which no entry is committed: a transaction takes a few 8 KiB pages, so this is ample.</summary>
    public const long CatalogHeadroomBytes = 4L << 20;
    private readonly SealedBlobStoreOptions _options;
    private readonly ILogger _log;
    private readonly object _catalogWrite = new();
    // LiteDB's rebuild closes its engine and opens it again: a read in between (a pull's LIST or GET, the status
    // file) met a disposed engine and failed. Reads share this lock; Compact takes it alone (writes already wait
    // for _catalogWrite). Recursive: Compact's own reads, inside its write lock.
    private readonly ReaderWriterLockSlim _rebuild = new(LockRecursionPolicy.SupportsRecursion);
    // Commits wait their turn here without holding a thread; only the one writing the catalog blocks (LiteDB fsyncs).
    private readonly SemaphoreSlim _commitTurn = new(1, 1);
    private readonly ConcurrentQueue<QueuedEntry> _queuedEntries = new();   // waiting for the turn: see CommitEntryAsync
    private readonly ConcurrentQueue<string> _spares = new();               // spare/ files not yet taken: see RefillSpareFiles
    private bool _disposed;

    public string DataDir { get; }
    public string BlobsDir { get; }

    /// <summary>What held the store when <see cref="SealedBlobStoreOptions.LockWait"/> had Open wait for it, and how long; null if it did not.</summary>
    public (StoreHolder Holder, TimeSpan Time)? WaitedFor => _lock.WaitedFor;

    private SealedBlobStore(string dataDir, DataDirectoryLock dataLock, SealedBlobStoreOptions options)
    {
        DataDir = dataDir;
        BlobsDir = Path.Combine(dataDir, BlobsDirectoryName);
        _lock = dataLock;
        _options = options;
        _log = options.Logger;
        _catalog = Catalog.Open(Path.Combine(dataDir, CatalogFileName));
    }

    /// <summary>The open LiteDB catalog and its two collections.</summary>
    private sealed class Catalog
    {
        public LiteDatabase Db { get; }
        public ILiteCollection<BsonDocument> Submissions { get; }
        public ILiteCollection<BsonDocument> Meta { get; }
        /// <summary>Ids whose entry is deleted and whose file is about to go: an orphan the sweep may delete.</summary>
        public ILiteCollection<BsonDocument> Deleting { get; }
        public LogWriterProbe LogWriter { get; }
        /// <summary>An I/O error came out of LiteDB: its engine now gives that same error for every call, until reopened.</summary>
        public volatile bool Failed;

        private Catalog(LiteDatabase db)
        {
            Db = db;
            Submissions = db.GetCollection("submissions");
            EnsureIndexes();
            Meta = db.GetCollection("meta");
            Deleting = db.GetCollection("deleting");
            LogWriter = LogWriterProbe.Of(db);
        }

        public void EnsureIndexes()
        {
            Submissions.EnsureIndex("seq", unique: true);
            Submissions.EnsureIndex("state");
        }

        /// <summary>
        /// LiteDB's rebuild (5.0.19 to 5.0.21 at least) remakes each secondary index under a loop guard sized from its
        /// new, still empty file, and fails ("Detected loop in FindAll") past 2,550 entries (litedb-org/LiteDB#2827). So
        /// they are dropped first and made again after, from the rebuilt file; an index lost to a crash in between is
        /// made again at the next open. The _id index is not remade that way. Ends with the log written into catalog.db,
        /// so that the files' sizes say what the rebuild gave back.
        /// </summary>
        public void Rebuild()
        {
            Submissions.DropIndex("seq");
            Submissions.DropIndex("state");
            Db.Rebuild();
            EnsureIndexes();
            Db.Checkpoint();
        }

        public static Catalog Open(string file)
        {
            var db = new LiteDatabase(new ConnectionString { Filename = file, Connection = ConnectionType.Direct });
            try { return new Catalog(db); }
            catch { db.Dispose(); throw; }
        }
    }

    /// <summary>
    /// Runs one catalog operation. Once a write has failed on I/O (a full disk), LiteDB's engine refuses every
    /// later call with that error for as long as it stays open: the store then reopens the catalog at its next use,
    /// once LiteDB has room to close it (closing writes the log into catalog.db; with none, it waits forever). So the
    /// daemon serves again as soon as space is back, without a restart. What the failed transaction wrote never
    /// reached LiteDB's commit mark, and reopening ignores it.
    /// </summary>
    private T Use<T>(Func<Catalog, T> operation)
    {
        var catalog = _catalog;
        if (catalog.Failed) catalog = Reopen(catalog);
        _rebuild.EnterReadLock(); // after Reopen, which waits for _catalogWrite: Compact holds that, then waits for readers
        try { return operation(catalog); }
        catch (Exception e) when (!_disposed && (e is IOException or ObjectDisposedException || e is LiteException && catalog.LogWriter.EngineClosed))
        {
            // LiteDB reports a write that failed in its writer thread as that I/O error, or, having shut its
            // engine down over it, as a disposed lock: to callers both are the store's I/O failure. (Its other
            // exceptions, a lock timeout say, leave the engine open: those pass as they are.)
            catalog.Failed = true;
            if (e is IOException) throw;
            if (HasRoomToClose(out _, out _)) throw new CatalogFailedException($"the catalog failed: {e.Message}", e);
            throw WriteFailure.DiskFull($"No space left on device: the catalog failed ({e.Message})", e);
        }
        finally { _rebuild.ExitReadLock(); }
    }

    private void Use(Action<Catalog> operation) => Use(c => { operation(c); return 0; });

    private Catalog Reopen(Catalog failed)
    {
        lock (_catalogWrite)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_catalog != failed) return _catalog; // reopened meanwhile
            if (!HasRoomToClose(out var free, out var needed))
                throw WriteFailure.DiskFull($"No space left on device: the catalog reopens once {needed:N0} bytes are free in {DataDir} ({free:N0} now)");
            failed.LogWriter.ForgetLeakedTransactions();
            failed.Db.Dispose();
            _catalog = Catalog.Open(Path.Combine(DataDir, CatalogFileName));
            _log.LogWarning("store: catalog reopened after an I/O error (a full disk?); {Free:N0} bytes free", free);
            return _catalog;
        }
    }

    /// <summary>
    /// Whether closing the catalog can write its whole log into catalog.db (which may grow by as much), with a margin;
    /// the same room holds the new copy a rebuild writes.
    /// </summary>
    private bool HasRoomToClose(out long free, out long needed)
    {
        free = new DriveInfo(DataDir).AvailableFreeSpace;
        needed = CatalogBytes() + (1L << 20);
        return free >= needed;
    }

    /// <summary>
    /// Called after each commit, before it is reported: LiteDB 5.0's Commit returns before its writer thread has
    /// written the log, and fsyncs it later on its own time (<see cref="LogWriterProbe"/>). So: wait for the writer
    /// (which throws if it failed, a full disk say: the commit is then reported failed, and LiteDB forgets it on
    /// reopening), fsync the log, and fsync the directory, since LiteDB creates the log on the first write after
    /// each start and never makes its name durable.
    /// </summary>
    private void MakeDurable(Catalog catalog)
    {
        catalog.LogWriter.WaitUntilWritten();
        FileSync.Fsync(Path.Combine(DataDir, CatalogLogFileName));
        FileSync.Fsync(DataDir);
    }

    /// <summary>Rolls a failed transaction back; a rollback that fails too (the engine refuses every call after an I/O error) must not hide why.</summary>
    private static void RollBack(Catalog catalog)
    {
        try { catalog.Db.Rollback(); }
        catch (Exception e) when (e is IOException or LiteException) { }
    }

    /// <summary>
    /// Opens (creating if needed) the store in <paramref name="dataDir"/>: takes daemon.lock, then sweeps
    /// what an interrupted run left behind. Throws <see cref="StoreLockedException"/> when another process
    /// holds the lock.
    /// </summary>
    public static SealedBlobStore Open(string dataDir, SealedBlobStoreOptions? options = null) => Open(dataDir, options, recover: false, out _);

    /// <summary>
    /// For a data directory whose catalog.db is lost (a disk error, a mistaken delete: <see cref="CatalogMissingException"/>):
    /// opens the store with a new catalog holding one entry per blobs/ID.sealed, its size and SHA-256 read from the
    /// file and its arrival day from the file's time (set to that day at commit). Acknowledgements are lost with the
    /// old catalog, so every recovered submission waits for every journalist again (a fetch that already holds one
    /// verifies it and acknowledges it without a transfer). With a catalog in place, enters the blobs a sweep kept in
    /// orphaned/ (an older catalog.db put back, a commit cut short) the same way. <paramref name="recovered"/> is null
    /// when there was nothing to enter.
    /// </summary>
    public static SealedBlobStore OpenRecovering(string dataDir, SealedBlobStoreOptions? options, out int? recovered) =>
        Open(dataDir, options, recover: true, out recovered);

    private static SealedBlobStore Open(string dataDir, SealedBlobStoreOptions? options, bool recover, out int? recovered)
    {
        recovered = null;
        options ??= new SealedBlobStoreOptions();
        options.Validate();
        dataDir = Path.GetFullPath(dataDir);

        // Everything this process creates from here on is private unless deliberately widened (pull.sock).
        Posix.SetUmask(0b000_111_111);
        CreatePrivateDirectory(dataDir);
        var dataLock = DataDirectoryLock.TryAcquire(dataDir, options.LockWait, options.Holder)
                       ?? throw new StoreLockedException(dataDir, DataDirectoryLock.HeldBy(dataDir));
        try
        {
            CreatePrivateDirectory(Path.Combine(dataDir, BlobsDirectoryName));
            CreatePrivateDirectory(Path.Combine(dataDir, SparesDirectoryName));
            var catalog = Path.Combine(dataDir, CatalogFileName);
            var restoredFrom = RestoreInterruptedRebuild(dataDir);
            if (!File.Exists(catalog)) File.Create(catalog, 0, FileOptions.None).Dispose();
            File.SetUnixFileMode(catalog, PrivateFile);
            // A catalog that never recorded anything (just made, or left empty by a recovery cut off while it read
            // the blobs) beside sealed blobs: its sweep would delete them all as orphans.
            var sealedBlobs = Directory.EnumerateFiles(Path.Combine(dataDir, BlobsDirectoryName), "*" + SealedExtension).Count();
            SealedBlobStore? store = null;
            try
            {
                store = new SealedBlobStore(dataDir, dataLock, options);
                if (restoredFrom is not null)
                    store._log.LogWarning("store: catalog.db was missing after an interrupted compaction; restored it from {Backup}", restoredFrom);
                if (recover && store.ReturnOrphans() > 0)
                    sealedBlobs = Directory.EnumerateFiles(store.BlobsDir, "*" + SealedExtension).Count();
                if (store.CatalogNeverUsed())
                {
                    if (sealedBlobs == 0) store.MarkCatalogInUse(); // from now on an orphan (a first commit cut short) is kept as usual
                    else if (recover) recovered = store.EnterBlobsInCatalog(); // one transaction: cut off, the catalog stays never used
                    else
                    {
                        store.Dispose();
                        throw new CatalogMissingException(dataDir, sealedBlobs);
                    }
                }
                else if (recover && store.EnterBlobsInCatalog() is > 0 and var entered) recovered = entered; // those put back from orphaned/
                RemoveRebuildLeftovers(dataDir);
                store.Sweep();
            }
            catch (Exception e) when (CatalogDamagedException.IsDamage(e))
            {
                // A catalog.db that LiteDB cannot read (a disk error, a bad copy put back) failed in LiteDB's words or
                // .NET's ("Unable to translate bytes [D9] at index 0 ..."), naming neither the file nor a way out.
                try { store?.Dispose(); } catch (Exception) { }
                throw new CatalogDamagedException(dataDir, sealedBlobs, e);
            }
            store.RefillSpareFiles();
            return store;
        }
        catch
        {
            dataLock.Dispose();
            throw;
        }
    }

    /// <summary>This catalog was never opened beside an empty blobs/, nor committed to: it holds no sequence number.</summary>
    private bool CatalogNeverUsed() => Use(catalog => catalog.Meta.FindById("sequence") is null && catalog.Submissions.Count() == 0);

    /// <summary>A new catalog, opened with blobs/ empty, records sequence 0 at once, durably: see <see cref="CatalogNeverUsed"/>.</summary>
    private void MarkCatalogInUse()
    {
        lock (_catalogWrite) Use(catalog =>
        {
            catalog.Meta.Upsert(new BsonDocument { ["_id"] = "sequence", ["value"] = 0L });
            MakeDurable(catalog);
        });
    }

    /// <summary>An entry for every blobs/ID.sealed that has none, in the order of their days (then ids): see <see cref="OpenRecovering"/>.</summary>
    private int EnterBlobsInCatalog()
    {
        var entries = new List<QueuedEntry>();
        foreach (var path in Directory.EnumerateFiles(BlobsDir, "*" + SealedExtension))
        {
            var id = Path.GetFileNameWithoutExtension(path);
            if (!SubmissionId.IsValid(id) || Use(catalog => catalog.Submissions.FindById(id)) is not null) continue;
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
            var sha256 = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(file));
            entries.Add(new QueuedEntry(id, file.Length, sha256) { Day = DateOnly.FromDateTime(File.GetLastWriteTimeUtc(path)) });
        }
        entries.Sort((a, b) => (a.Day, a.Id).CompareTo((b.Day, b.Id)));
        lock (_catalogWrite) Use(catalog => Insert(catalog, entries));
        if (entries.Count > 0)
            _log.LogWarning("store: {Count} submission(s) entered in catalog.db from their sealed files, each waiting for every journalist again", entries.Count);
        return entries.Count;
    }

    /// <summary>
    /// LiteDB's rebuild (<see cref="Compact"/>) writes the new catalog as catalog-temp.db, then renames
    /// catalog.db to catalog-backup.db and catalog-temp.db to catalog.db, with nothing in between to recover from:
    /// killed between the two renames, it leaves no catalog.db. The backup is the whole catalog as it was
    /// (LiteDB checkpoints it before the rebuild), so it goes back in place. Returns its name, or null.
    /// </summary>
    private static string? RestoreInterruptedRebuild(string dataDir)
    {
        var catalog = Path.Combine(dataDir, CatalogFileName);
        if (File.Exists(catalog)) return null;
        // catalog-backup.db, or catalog-backup-N.db when an older one was still there: the highest N is the newest.
        var newest = RebuildFiles(dataDir, "backup").OrderBy(f => f.Index).LastOrDefault().Path;
        if (newest is null) return null;
        File.Move(newest, catalog);
        FileSync.Fsync(dataDir);
        return Path.GetFileName(newest);
    }

    /// <summary>Whether a rebuild's backup of catalog.db is there (which the next open puts back if catalog.db is missing).</summary>
    public static bool HasRebuildBackup(string dataDir) => Directory.Exists(dataDir) && RebuildFiles(dataDir, "backup").Any();

    /// <summary>
    /// With catalog.db in place, what an interrupted or finished rebuild left: catalog-temp*.db (a new catalog cut
    /// off while written) and catalog-backup*.db (the old one, deleted entries and all, which must not stay on disk).
    /// </summary>
    private static void RemoveRebuildLeftovers(string dataDir)
    {
        var leftovers = RebuildTempFiles(dataDir).Concat(RebuildFiles(dataDir, "backup").Select(f => f.Path)).ToList();
        foreach (var path in leftovers) TryDelete(path);
        if (leftovers.Count > 0) FileSync.Fsync(dataDir);
    }

    /// <summary>The new catalog a rebuild writes (catalog-temp.db or catalog-temp-N.db) and its LiteDB log.</summary>
    private static IEnumerable<string> RebuildTempFiles(string dataDir) =>
        RebuildFiles(dataDir, "temp").Select(f => f.Path).Concat(Directory.EnumerateFiles(dataDir, "catalog-temp*-log.db"));

    /// <summary>catalog-KIND.db and catalog-KIND-N.db (LiteDB's names when the plain one is taken), without their logs.</summary>
    private static IEnumerable<(string Path, int Index)> RebuildFiles(string dataDir, string kind)
    {
        var stem = Path.GetFileNameWithoutExtension(CatalogFileName) + "-" + kind;
        foreach (var path in Directory.EnumerateFiles(dataDir, stem + "*" + Path.GetExtension(CatalogFileName)))
        {
            var rest = Path.GetFileNameWithoutExtension(path)[stem.Length..];
            if (rest.Length == 0) yield return (path, 0);
            else if (rest[0] == '-' && int.TryParse(rest[1..], NumberStyles.None, CultureInfo.InvariantCulture, out var n)) yield return (path, n);
        }
    }

    private static void CreatePrivateDirectory(string path)
    {
        Directory.CreateDirectory(path, PrivateDirectory);
        File.SetUnixFileMode(path, PrivateDirectory); // tighten one that already existed
    }

    // ---- writing -------------------------------------------------------------------------------------

    public ISubmissionWriter BeginSubmission()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        while (true)
        {
            var id = SubmissionId.New();
            try { return new SubmissionWriter(this, id); }
            catch (IOException) when (File.Exists(PartialPath(id)) || File.Exists(SealedPath(id))) { } // 2^-100: try another
        }
    }

    internal string PartialPath(string id) => Path.Combine(BlobsDir, id + PartialExtension);
    internal string SealedPath(string id) => Path.Combine(BlobsDir, id + SealedExtension);
    private string SparesDir => Path.Combine(DataDir, SparesDirectoryName);

    /// <summary>
    /// Tops spare/ up to <see cref="SealedBlobStoreOptions.SpareFiles"/> empty files (0600), all made now, and
    /// returns how many it made. Files already there (from before a restart) count.
    /// Made only at open and on this call (the daemon's hourly pass), never as uploads take them: made then,
    /// their birth times would follow the uploads again.
    /// </summary>
    public int RefillSpareFiles()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_spares.IsEmpty)
            foreach (var leftover in Directory.EnumerateFiles(SparesDir)) _spares.Enqueue(leftover);
        var made = 0;
        for (var n = _spares.Count; n < _options.SpareFiles; n++, made++)
        {
            var path = Path.Combine(SparesDir, SubmissionId.New());
            new FileStream(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = PrivateFile }).Dispose();
            _spares.Enqueue(path);
        }
        if (made > 0) FileSync.Fsync(SparesDir);
        return made;
    }

    /// <summary>Takes back an emptied file as a spare, if spare/ is short of <see cref="SealedBlobStoreOptions.SpareFiles"/>; false otherwise.</summary>
    internal bool ReturnSpareFile(string path)
    {
        if (_disposed || _spares.Count >= _options.SpareFiles) return false;
        var spare = Path.Combine(SparesDir, SubmissionId.New());
        try { File.Move(path, spare, overwrite: false); }
        catch (IOException) { return false; }
        SetDayTimes(spare, Today()); // emptied just now: its mtime would tell when a refused or cut-off upload ended
        SetFolderDayTimes();
        _spares.Enqueue(spare);
        return true;
    }

    /// <summary>Moves a spare file to <paramref name="path"/> (the same inode, so its birth time); false when none is left.</summary>
    internal bool TakeSpareFile(string path)
    {
        while (_spares.TryDequeue(out var spare))
        {
            try
            {
                File.Move(spare, path, overwrite: false);
                SetFolderDayTimes(); // the move dated both folders to this upload's start
                return true;
            }
            catch (FileNotFoundException) { }   // gone meanwhile: the next one
        }
        return false;
    }

    /// <summary>
    /// The last step of a commit, after the file is durable under its final name: a catalog transaction that
    /// assigns the next pull sequence number and records the entry. Sequence numbers follow commit order (not
    /// begin order), so a pull cursor "after N" never misses a slow upload that began earlier.
    /// Commits wait their turn without holding a thread (uploads that waited for the catalog lock each blocked
    /// a pool thread, and under steady load the pool kept adding threads: found by the reliability soak), and
    /// whoever gets the turn records every entry queued by then in one transaction: when many uploads finish
    /// together they share one fsync. (64 uploads of 16 MiB finishing at once each took 3-20 ms to commit alone,
    /// so the last waited up to 217 ms for the 63 before it.)
    /// </summary>
    internal async Task<SubmissionRecord> CommitEntryAsync(string id, long size, string sha256Hex)
    {
        var entry = new QueuedEntry(id, size, sha256Hex);
        _queuedEntries.Enqueue(entry);
        await _commitTurn.WaitAsync();
        try
        {
            if (!entry.Committed.Task.IsCompleted) CommitQueuedEntries();
        }
        finally { _commitTurn.Release(); }
        return await entry.Committed.Task;
    }

    private sealed record QueuedEntry(string Id, long Size, string Sha256Hex)
    {
        /// <summary>The arrival day: today, except for an entry recovered from its file (<see cref="OpenRecovering"/>).</summary>
        public DateOnly? Day { get; init; }

        public TaskCompletionSource<SubmissionRecord> Committed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>
    /// Records the queued entries in one transaction. If it fails, it fails for each of them, and each upload
    /// then deletes its file and reports the failure, as it would alone.
    /// </summary>
    private void CommitQueuedEntries()
    {
        var batch = new List<QueuedEntry>();
        while (_queuedEntries.TryDequeue(out var queued)) batch.Add(queued);
        try
        {
            var records = CommitEntries(batch);
            for (var i = 0; i < batch.Count; i++) batch[i].Committed.SetResult(records[i]);
        }
        catch (Exception e)
        {
            foreach (var queued in batch) queued.Committed.SetException(e);
        }
    }

    private List<SubmissionRecord> CommitEntries(IReadOnlyList<QueuedEntry> entries)
    {
        lock (_catalogWrite)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // The blob is on disk already; what the catalog needs is kept free, so that LiteDB itself, whose engine
            // stops for good at its first failed write (see Use), does not meet a full disk on our account. (Checked
            // outside Use: refusing here is no failure of the catalog.)
            if (new DriveInfo(DataDir).AvailableFreeSpace is var free && free < CatalogHeadroomBytes)
                throw WriteFailure.DiskFull($"No space left on device: {free:N0} bytes free in {DataDir}, and the catalog keeps {CatalogHeadroomBytes:N0} for itself");
            return Use(catalog => Insert(catalog, entries));
        }
    }

    /// <summary>The commit itself: the next sequence numbers, the entries, one transaction, made durable before it returns.</summary>
    private List<SubmissionRecord> Insert(Catalog catalog, IReadOnlyList<QueuedEntry> entries)
    {
        var sequence = catalog.Meta.FindById("sequence")?["value"].AsInt64 ?? 0;
        var today = Today();
        var docs = entries.Select(e => new BsonDocument
        {
            ["_id"] = e.Id,
            ["seq"] = ++sequence,
            ["state"] = nameof(SubmissionState.Committed),
            ["size"] = e.Size,
            ["sha256"] = e.Sha256Hex,
            ["day"] = (e.Day ?? today).ToString(DayFormat, CultureInfo.InvariantCulture),
            ["acks"] = new BsonArray(),
        }).ToList();
        catalog.Db.BeginTrans();
        try
        {
            catalog.Meta.Upsert(new BsonDocument { ["_id"] = "sequence", ["value"] = sequence });
            catalog.Submissions.Insert(docs);
        }
        catch
        {
            RollBack(catalog);
            throw;
        }
        // From Commit on, a failure (its checkpoint into catalog.db, our fsyncs) may come after the commit mark.
        try
        {
            catalog.Db.Commit();
            MakeDurable(catalog);
        }
        catch (Exception e) when (e is IOException or LiteException or ObjectDisposedException)
        {
            throw new CommitOutcomeUnknownException(e);
        }
        foreach (var catalogFile in CatalogFiles(DataDir)) SetDayTimes(catalogFile, today); // written at this commit's moment
        SetDayTimes(DataDir, today); // LiteDB may have made its log file just now
        return docs.ConvertAll(ToRecord);
    }

    // ---- reading -------------------------------------------------------------------------------------

    public IReadOnlyList<SubmissionRecord> ListCommitted(long afterSequence = 0) => Use(catalog => catalog.Submissions.Query()
            .Where("(state = @0 OR state = @1) AND seq > @2", nameof(SubmissionState.Committed), nameof(SubmissionState.Acknowledged), afterSequence)
            .OrderBy("seq").ToList().Select(ToRecord).ToList());

    public IReadOnlyList<SubmissionRecord> ListWaiting(string recipient) => Use(catalog => catalog.Submissions.Query()
            .Where("state = @0", nameof(SubmissionState.Committed))
            .OrderBy("seq").ToList().Select(ToRecord)
            .Where(r => !r.AcknowledgedBy.Contains(recipient)).ToList());

    public SubmissionRecord? Find(string id) =>
        SubmissionId.IsValid(id) && Use(catalog => catalog.Submissions.FindById(id)) is { } doc ? ToRecord(doc) : null;

    public Stream OpenSealed(string id)
    {
        var record = Find(id);
        if (record is null || record.State is not (SubmissionState.Committed or SubmissionState.Acknowledged))
            throw new FileNotFoundException($"no committed submission {id}");
        return new FileStream(SealedPath(id), new FileStreamOptions
        {
            Mode = FileMode.Open, Access = FileAccess.Read, Share = FileShare.Read | FileShare.Delete,
            Options = FileOptions.SequentialScan, BufferSize = 0,
        });
    }

    public StoreStats GetStats()
    {
        // Asked every few seconds by the status file: a blobs/ deleted under the daemon fails every upload, and the
        // catalog alone would not show it. Not made again here: what it held is gone, which the operator must see.
        if (!Directory.Exists(BlobsDir))
            throw new DirectoryNotFoundException($"{BlobsDir} is missing (deleted, or its file system gone): no upload can be stored; " +
                                                 "put it back from a backup, then restart the daemon");
        var waiting = Use(catalog => catalog.Submissions.Find(Query.EQ("state", nameof(SubmissionState.Committed))).Select(ToRecord).ToList());
        var orphaned = Directory.Exists(OrphanedDir) ? Directory.EnumerateFiles(OrphanedDir).Count() : 0;
        return new StoreStats(waiting.Count, waiting.Sum(r => r.Size), waiting.Count == 0 ? null : waiting.Min(r => r.ArrivedOn), orphaned);
    }

    // ---- acknowledgement and retention ---------------------------------------------------------------

    /// <summary>
    /// Records that <paramref name="recipient"/> holds a verified copy. When the quorum
    /// (<see cref="SealedBlobStoreOptions.DeleteAfter"/>) is reached the entry becomes Acknowledged, and is
    /// deleted now or after <see cref="SealedBlobStoreOptions.KeepDaysAfterAcknowledgement"/> days.
    /// Idempotent. Null if there is no such visible submission (unknown, damaged or already deleted).
    /// </summary>
    public SubmissionRecord? Acknowledge(string id, string recipient) => Acknowledge([id], recipient)[0];

    /// <summary>
    /// <see cref="Acknowledge(string, string)"/> for a batch, in one catalog transaction (one fsync instead of
    /// one per blob: a fetch acknowledges hundreds at a time). Results in the order of <paramref name="ids"/>.
    /// </summary>
    public IReadOnlyList<SubmissionRecord?> Acknowledge(IReadOnlyList<string> ids, string recipient)
    {
        if (!SealedBlobStoreOptions.IsValidJournalistName(recipient))
            throw new ArgumentException($"journalist name '{recipient}' is not 1-64 of a-z A-Z 0-9 . _ -");
        var results = new SubmissionRecord?[ids.Count];
        var toDelete = new List<string>();
        lock (_catalogWrite) Use(catalog =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var today = Today();
            catalog.Db.BeginTrans();
            try
            {
                for (var i = 0; i < ids.Count; i++)
                {
                    var id = ids[i];
                    if (!SubmissionId.IsValid(id) || catalog.Submissions.FindById(id) is not { } doc) continue;
                    var record = ToRecord(doc);
                    if (record.State is not (SubmissionState.Committed or SubmissionState.Acknowledged)) continue;
                    if (record.AcknowledgedBy.Contains(recipient) || toDelete.Contains(id)) { results[i] = record; continue; }

                    doc["acks"].AsArray.Add(new BsonDocument { ["by"] = recipient, ["day"] = today.ToString(DayFormat, CultureInfo.InvariantCulture) });
                    var acked = doc["acks"].AsArray.Select(a => a["by"].AsString).ToHashSet();
                    var quorum = _options.DeleteAfter == AcknowledgementQuorum.First || _options.Journalists.All(acked.Contains);
                    if (quorum && record.State == SubmissionState.Committed)
                    {
                        doc["state"] = nameof(SubmissionState.Acknowledged);
                        doc["deleteOn"] = today.AddDays(_options.KeepDaysAfterAcknowledgement).ToString(DayFormat, CultureInfo.InvariantCulture);
                    }
                    results[i] = ToRecord(doc);
                    if (quorum && _options.KeepDaysAfterAcknowledgement == 0)
                    {
                        toDelete.Add(DeleteEntry(catalog, id)); // catalog first; the file goes after the commit
                    }
                    else catalog.Submissions.Update(doc);
                }
                catalog.Db.Commit();
            }
            catch
            {
                RollBack(catalog);
                throw;
            }
            MakeDurable(catalog); // before any file goes
        });
        DeleteFiles(toDelete);
        return results;
    }

    /// <summary>
    /// <see cref="Acknowledge(IReadOnlyList{string}, string)"/> in the commits' turn (<see cref="CommitEntryAsync"/>):
    /// each pull session that waited for the catalog lock blocked a pool thread, and a hundred sessions acknowledging
    /// at once left the form and the uploads waiting for threads.
    /// </summary>
    public async Task<IReadOnlyList<SubmissionRecord?>> AcknowledgeAsync(IReadOnlyList<string> ids, string recipient)
    {
        await _commitTurn.WaitAsync();
        try { return Acknowledge(ids, recipient); }
        finally { _commitTurn.Release(); }
    }

    /// <summary>
    /// Deletes acknowledged blobs whose keeping time is over and, if <see cref="SealedBlobStoreOptions.MaxUnfetchedDays"/>
    /// is set, unfetched ones older than that (each with a warning for the operator). Returns how many went.
    /// </summary>
    public int ApplyRetention()
    {
        var today = Today();
        var deleted = new List<string>();
        lock (_catalogWrite) Use(catalog =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            foreach (var doc in catalog.Submissions.Find(Query.EQ("state", nameof(SubmissionState.Acknowledged))).ToList())
            {
                if (doc["deleteOn"].IsString && ParseDay(doc["deleteOn"].AsString) <= today) deleted.Add(DeleteEntry(catalog, doc["_id"].AsString));
            }
            if (_options.MaxUnfetchedDays is int maxDays)
            {
                var oldest = today.AddDays(-maxDays);
                foreach (var doc in catalog.Submissions.Find(Query.EQ("state", nameof(SubmissionState.Committed))).ToList())
                {
                    var record = ToRecord(doc);
                    if (record.ArrivedOn >= oldest) continue;
                    _log.LogWarning("retention: deleted unfetched submission {Id} from {Day}: older than MaxUnfetchedDays={Max}",
                        record.Id, record.ArrivedOn, maxDays);
                    deleted.Add(DeleteEntry(catalog, record.Id));
                }
            }
            if (deleted.Count > 0) MakeDurable(catalog); // before any file goes
        });
        DeleteFiles(deleted);
        return deleted.Count;
    }

    /// <summary>
    /// Makes the file system say no more about arrival times than the catalog does (the day). Every blob's
    /// access and modification times are set to 00:00 UTC of its arrival day, as are those of blobs/, spare/
    /// and its files (which uploads take and give back) and the catalog's files (today's). A file's change time (ctime) cannot be set, but this pass sets it, on every one
    /// of them, to the time of the pass: run often (the daemon does, every Retention:CheckInterval), it leaves
    /// the newest commit's exact time on disk only until the next pass. Returns how many blobs it went through.
    /// The birth time some file systems keep (ext4's crtime) cannot be changed at all: docs/storage.md.
    /// </summary>
    public int BlurFileTimes()
    {
        lock (_catalogWrite) return Use(catalog =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var blobs = 0;
            foreach (var doc in catalog.Submissions.FindAll())
                if (doc["day"].IsString && SetDayTimes(SealedPath(doc["_id"].AsString), ParseDay(doc["day"].AsString))) blobs++;
            var today = Today();
            SetDayTimes(BlobsDir, today);
            foreach (var spare in Directory.EnumerateFiles(SparesDir)) SetDayTimes(spare, today);
            SetDayTimes(SparesDir, today);
            foreach (var catalogFile in CatalogFiles(DataDir)) SetDayTimes(catalogFile, today);
            return blobs;
        });
    }

    /// <summary>
    /// The catalog's files in a data directory, as LiteDB keeps them: catalog.db, its log (catalog-log.db) and,
    /// during a rebuild, its backup (catalog-backup.db).
    /// </summary>
    public static string[] CatalogFiles(string dataDir) =>
        Directory.GetFiles(dataDir, Path.GetFileNameWithoutExtension(CatalogFileName) + "*" + Path.GetExtension(CatalogFileName));

    /// <summary>A new blob's times, at commit: its day, not its moment (its ctime waits for <see cref="BlurFileTimes"/>).</summary>
    internal void SetArrivalDayTimes(string path) => SetDayTimes(path, Today());

    /// <summary>
    /// blobs/ and spare/ back to today's midnight after an upload has moved a file in or out of them: otherwise their
    /// modification time tells when the last upload began, ended or was committed, and copies that keep modification
    /// times (cp -a, rsync -t, tar) carry it off. Their change time, like the blob's, waits for <see cref="BlurFileTimes"/>.
    /// </summary>
    internal void SetFolderDayTimes()
    {
        var today = Today();
        SetDayTimes(BlobsDir, today);
        SetDayTimes(SparesDir, today);
    }

    private static bool SetDayTimes(string path, DateOnly day)
    {
        var midnight = day.ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc);
        try
        {
            File.SetLastAccessTimeUtc(path, midnight);
            File.SetLastWriteTimeUtc(path, midnight);
            return true;
        }
        catch (FileNotFoundException) { return false; }     // deleted meanwhile, or never there (a damaged entry)
        catch (DirectoryNotFoundException) { return false; }
    }

    /// <summary>
    /// Rebuilds catalog.db so the space of deleted entries goes back to the file system. LiteDB keeps the
    /// old file beside it as catalog-backup.db, deleted entries and all: once the rebuild has succeeded it
    /// goes too, or nothing would be given back and the deleted entries would stay on disk.
    /// </summary>
    public long Compact()
    {
        lock (_catalogWrite)
        {
            _rebuild.EnterWriteLock();
            try { return Rebuild(); }
            finally { _rebuild.ExitWriteLock(); }
        }
    }

    private long Rebuild() => Use(catalog =>
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            // The rebuild writes a new copy of the catalog beside it; on a disk without room for it, LiteDB can hang
            // closing its engine over the dropped indexes' log pages it cannot write (seen in FullDiskTests): so nothing
            // is written unless the copy fits.
            if (!HasRoomToClose(out var free, out var needed))
                throw WriteFailure.DiskFull($"No space left on device: compacting needs {needed:N0} bytes free in {DataDir} ({free:N0} now)");
            var before = CatalogBytes();
            try { catalog.Rebuild(); }
            catch
            {
                catalog.Failed = true; // reopened at its next use, indexes and all, whatever state the failure left LiteDB's engine in
                // A rebuild that failed (a full disk) leaves its new file half-made: it goes now, not at the next start.
                foreach (var temp in RebuildTempFiles(DataDir)) TryDelete(temp);
                throw;
            }
            // catalog-backup.db, or catalog-backup-N.db if an older one was in the way.
            var backups = RebuildFiles(DataDir, "backup").ToList();
            foreach (var (backup, _) in backups) File.Delete(backup);
            if (backups.Count > 0) FileSync.Fsync(DataDir);
            return Math.Max(0, before - CatalogBytes());
        });

    private long CatalogBytes() => CatalogFiles(DataDir).Sum(f => new FileInfo(f).Length);

    /// <summary>
    /// The catalog entry only: its file goes once the deletion is durable (<see cref="DeleteFiles"/>). A crash in
    /// between leaves an orphan file, never an entry without its file; the id noted in "deleting" before the entry goes
    /// tells the next sweep that this orphan is to be deleted, not kept.
    /// </summary>
    private static string DeleteEntry(Catalog catalog, string id)
    {
        catalog.Deleting.Upsert(new BsonDocument { ["_id"] = id }); // first: outside a transaction (retention), a crash between the two leaves the entry, never an unnoted orphan
        catalog.Submissions.Delete(id);
        return id;
    }

    /// <summary>Deletes the files of entries deleted durably, then forgets their ids (which would otherwise outlive them).</summary>
    private void DeleteFiles(IReadOnlyList<string> ids)
    {
        if (ids.Count == 0) return;
        var gone = ids.Where(id => TryDelete(SealedPath(id))).ToList(); // one left (an I/O error) stays noted for the sweep
        try { lock (_catalogWrite) Use(catalog => { foreach (var id in gone) catalog.Deleting.Delete(id); }); }
        catch (Exception e) when (e is IOException or LiteException or ObjectDisposedException) { } // the next sweep forgets them
    }

    // ---- recovery ------------------------------------------------------------------------------------

    /// <summary>
    /// Run at open, before anything is served. Partial files are interrupted uploads: deleted. A .sealed file
    /// without a visible catalog entry is deleted if its entry was being deleted (noted in "deleting"); any other
    /// (a commit cut between rename and catalog, or every newer blob when an older catalog.db was put back from a
    /// backup) is moved to orphaned/, out of sight but never lost: `oniondrop recover` enters it in the catalog
    /// again. A visible entry whose file is missing or not its recorded size becomes
    /// Damaged: never offered to pull, logged for the operator. Hashes are not re-read here (that would
    /// read every stored byte at each start); they are checked end to end by every fetch instead.
    /// </summary>
    private void Sweep()
    {
        lock (_catalogWrite) Use(catalog =>
        {
            var visible = new HashSet<string>();
            foreach (var doc in catalog.Submissions.FindAll().ToList())
            {
                var record = ToRecord(doc);
                if (record.State is not (SubmissionState.Committed or SubmissionState.Acknowledged)) continue;
                var file = new FileInfo(SealedPath(record.Id));
                if (file.Exists && file.Length == record.Size) { visible.Add(record.Id); continue; }
                doc["state"] = nameof(SubmissionState.Damaged);
                catalog.Submissions.Update(doc);
                _log.LogError("store: submission {Id} is damaged ({Problem}); it will not be offered to pull",
                    record.Id, file.Exists ? $"file is {file.Length} bytes, catalog says {record.Size}" : "file missing");
            }

            var deleting = catalog.Deleting.FindAll().Select(d => d["_id"].AsString).ToHashSet();
            int removed = 0, kept = 0;
            foreach (var path in Directory.EnumerateFiles(BlobsDir))
            {
                var name = Path.GetFileName(path);
                var isOrphan = name.EndsWith(SealedExtension, StringComparison.Ordinal) && !visible.Contains(name[..^SealedExtension.Length]);
                if (name.EndsWith(PartialExtension, StringComparison.Ordinal) || isOrphan && deleting.Contains(name[..^SealedExtension.Length]))
                {
                    TryDelete(path);
                    removed++;
                }
                else if (isOrphan)
                {
                    if (kept++ == 0) CreatePrivateDirectory(OrphanedDir);
                    KeepOrphan(path);
                }
                else if (!name.EndsWith(SealedExtension, StringComparison.Ordinal))
                    _log.LogWarning("store: unexpected file {Name} in blobs/ left alone", name);
            }
            if (removed + kept > 0) FileSync.Fsync(BlobsDir);
            if (kept > 0) FileSync.Fsync(OrphanedDir); // the renames in, once for all
            if (removed > 0) _log.LogInformation("store: swept {Count} unfinished or deleted blob file(s)", removed);
            if (kept > 0)
                _log.LogWarning("store: {Count} sealed blob file(s) in blobs/ had no catalog entry (a commit cut short, or an older catalog.db " +
                    "put back): moved to {Dir}/, not deleted; `oniondrop recover` (the daemon stopped) enters them in the catalog again",
                    kept, OrphanedDirectoryName);
            if (deleting.Count > 0) catalog.Deleting.DeleteAll();
        });
    }

    // ---- helpers -------------------------------------------------------------------------------------

    private const string DayFormat = "yyyy-MM-dd";
    private static DateOnly ParseDay(string text) => DateOnly.ParseExact(text, DayFormat, CultureInfo.InvariantCulture);

    private DateOnly Today() => DateOnly.FromDateTime(_options.Clock.GetUtcNow().UtcDateTime);

    private static SubmissionRecord ToRecord(BsonDocument doc) => new(
        doc["_id"].AsString,
        doc["seq"].AsInt64,
        Enum.Parse<SubmissionState>(doc["state"].AsString),
        doc["size"].AsInt64,
        doc["sha256"].AsString,
        ParseDay(doc["day"].AsString),
        doc["acks"].AsArray.Select(a => a["by"].AsString).ToArray());

    private string OrphanedDir => Path.Combine(DataDir, OrphanedDirectoryName);

    /// <summary>Moves a sealed blob without an entry into orphaned/; the sweep makes the folder first and fsyncs both after.</summary>
    private void KeepOrphan(string path)
    {
        var target = Path.Combine(OrphanedDir, Path.GetFileName(path));
        if (File.Exists(target)) target += "." + Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(4)); // never over another copy
        File.Move(path, target);
    }

    /// <summary>For <see cref="OpenRecovering"/>: orphaned/ID.sealed files back into blobs/, durably, for entries to be made. Returns how many.</summary>
    private int ReturnOrphans()
    {
        if (!Directory.Exists(OrphanedDir)) return 0;
        var moved = 0;
        foreach (var path in Directory.EnumerateFiles(OrphanedDir, "*" + SealedExtension))
        {
            var target = SealedPath(Path.GetFileNameWithoutExtension(path));
            if (!SubmissionId.IsValid(Path.GetFileNameWithoutExtension(path)) || File.Exists(target)) continue;
            File.Move(path, target);
            moved++;
        }
        if (moved > 0) { FileSync.Fsync(BlobsDir); FileSync.Fsync(OrphanedDir); }
        return moved;
    }

    /// <returns>whether the file is gone (also when it was not there)</returns>
    internal static bool TryDelete(string path)
    {
        try { File.Delete(path); return true; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
    }

    public void Dispose()
    {
        lock (_catalogWrite)
        {
            if (_disposed) return;
            _disposed = true;
            // With no room, LiteDB's close would wait forever to write its log into catalog.db: the log stays,
            // and the next open replays it.
            if (HasRoomToClose(out var free, out var needed))
            {
                if (_catalog.Failed) _catalog.LogWriter.ForgetLeakedTransactions();
                _catalog.Db.Dispose();
                _lock.Dispose();
            }
            // daemon.lock stays held with the catalog still open: it goes with the process.
            else _log.LogWarning("store: catalog left unclosed for want of space ({Free:N0} bytes free, {Needed:N0} needed); the next start replays its log", free, needed);
        }
    }
}
