using System.Diagnostics;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Storage.Tests;

/// <summary>What an interrupted run leaves behind is never shown, and is gone after the next open's sweep.</summary>
public class RecoveryTests
{
    private TempDirectory _temp = null!;
    private string DataDir => _temp.Combine("data");
    private string Blobs => _temp.Combine("data", "blobs");

    [SetUp] public void SetUp() => _temp = new TempDirectory();
    [TearDown] public void TearDown() => _temp.Dispose();

    private string[] BlobFiles() => Directory.GetFiles(Blobs).Select(Path.GetFileName).Order().ToArray()!;

    [Test]
    public async Task A_writer_process_killed_mid_stream_leaves_nothing_visible_and_its_pieces_are_swept()
    {
        var psi = ChildProcess.StartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "KillableWriter.dll"), DataDir, "3"]);
        using var writer = Process.Start(psi)!;
        var committed = new List<string>();
        string? streaming = null;
        try
        {
            while (streaming is null && await writer.StandardOutput.ReadLineAsync() is { } line)
            {
                if (line.StartsWith("committed ")) committed.Add(line["committed ".Length..]);
                if (line.StartsWith("streaming ")) streaming = line["streaming ".Length..];
            }
            Assert.That(streaming, Is.Not.Null, "the writer exited before streaming");
            Assert.That(new FileInfo(Path.Combine(Blobs, streaming + ".partial")).Length, Is.GreaterThanOrEqualTo(1 << 20),
                "the killed writer had a megabyte on disk");
        }
        finally
        {
            writer.Kill(); // SIGKILL: no finally blocks, no Dispose, nothing tidied up
            await writer.WaitForExitAsync();
        }
        Assert.That(committed, Has.Count.EqualTo(3));
        Assert.That(BlobFiles(), Does.Contain(streaming + ".partial"), "the piece is there before the sweep");

        using var store = SealedBlobStore.Open(DataDir);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(committed));
        Assert.That(store.Find(streaming!), Is.Null);
        Assert.That(BlobFiles(), Is.EqualTo(committed.Select(id => id + ".sealed").Order()));
    }

    private string Orphaned => _temp.Combine("data", SealedBlobStore.OrphanedDirectoryName);

    private string[] OrphanedFiles() =>
        Directory.Exists(Orphaned) ? Directory.GetFiles(Orphaned).Select(f => Path.GetFileName(f)).Order().ToArray() : [];

    [Test]
    public async Task A_sealed_file_without_a_catalog_entry_is_kept_out_of_sight_at_open_and_a_partial_deleted()
    {
        string keep;
        using (var store = SealedBlobStore.Open(DataDir))
            keep = (await SealedBlobStoreTests.StoreAsync(store, 1000)).Record.Id;
        // A commit cut between the rename and the catalog transaction leaves exactly this.
        var orphan = SubmissionId.New();
        File.WriteAllBytes(Path.Combine(Blobs, orphan + ".sealed"), new byte[77]);
        File.WriteAllBytes(Path.Combine(Blobs, SubmissionId.New() + ".partial"), new byte[77]);

        using (var store = SealedBlobStore.Open(DataDir))
        {
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { keep }));
            Assert.That(BlobFiles(), Is.EqualTo(new[] { keep + ".sealed" }));
        }
        Assert.That(OrphanedFiles(), Is.EqualTo(new[] { orphan + ".sealed" }), "a whole sealed file is never deleted unasked");
        Assert.That(File.GetUnixFileMode(Orphaned), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
    }

    /// <summary>
    /// The docs say to put catalog.db back from a backup: one older than the last uploads made the sweep delete every
    /// newer blob as an orphan, submissions no journalist had fetched.
    /// </summary>
    [Test]
    public async Task An_older_catalog_put_back_loses_no_newer_submission_and_recover_enters_them_again()
    {
        var older = (await StoreThreeAsync()).ToHashSet();
        File.Copy(Catalog("catalog.db"), Catalog("backup.db"));
        var newer = new Dictionary<string, string>();
        using (var store = SealedBlobStore.Open(DataDir))
            for (var i = 0; i < 2; i++)
            {
                var record = (await SealedBlobStoreTests.StoreAsync(store, 2000 + i, 10 + i)).Record;
                newer[record.Id] = record.Sha256Hex;
            }
        File.Move(Catalog("backup.db"), Catalog("catalog.db"), overwrite: true);

        using (var store = SealedBlobStore.Open(DataDir))
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(older), "the older catalog's view");
        Assert.That(OrphanedFiles(), Is.EquivalentTo(newer.Keys.Select(id => id + ".sealed")), "the newer ones kept");

        using (var store = SealedBlobStore.OpenRecovering(DataDir, null, out var recovered))
        {
            Assert.That(recovered, Is.EqualTo(2));
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(older.Concat(newer.Keys)));
            foreach (var (id, sha256) in newer) Assert.That(store.Find(id)!.Sha256Hex, Is.EqualTo(sha256));
        }
        Assert.That(OrphanedFiles(), Is.Empty);
        using (SealedBlobStore.OpenRecovering(DataDir, null, out var again)) Assert.That(again, Is.Null, "nothing left to enter");
    }

    /// <summary>An acknowledged blob whose file outlived its deleted entry (a crash, an I/O error) is deleted, not kept.</summary>
    [Test]
    public async Task A_deletion_cut_before_its_file_went_is_finished_by_the_next_sweep()
    {
        string id;
        using (var store = SealedBlobStore.Open(DataDir))
        {
            id = (await SealedBlobStoreTests.StoreAsync(store, 1000)).Record.Id;
            var file = Path.Combine(Blobs, id + ".sealed");
            await ChattrAsync("+i", file); // the unlink fails, as if the process had died before it
            try { store.Acknowledge(id, "alice"); }
            finally { await ChattrAsync("-i", file); }
            Assert.That(store.Find(id), Is.Null);
            Assert.That(File.Exists(file), Is.True, "the file outlived its entry");
        }
        using (var store = SealedBlobStore.Open(DataDir)) Assert.That(store.ListCommitted(), Is.Empty);
        Assert.That(BlobFiles(), Is.Empty);
        Assert.That(OrphanedFiles(), Is.Empty, "an acknowledged blob is not kept as an orphan");
    }

    private static async Task ChattrAsync(string flag, string file)
    {
        var run = await ChildProcess.RunAsync("chattr", [flag, file]);
        Assert.That(run.ExitCode, Is.Zero, run.ToString());
    }

    [Test]
    public async Task An_entry_whose_file_is_missing_or_short_is_marked_damaged_and_never_offered()
    {
        string missing, shortened, intact;
        using (var store = SealedBlobStore.Open(DataDir))
        {
            missing = (await SealedBlobStoreTests.StoreAsync(store, 1000, 1)).Record.Id;
            shortened = (await SealedBlobStoreTests.StoreAsync(store, 1000, 2)).Record.Id;
            intact = (await SealedBlobStoreTests.StoreAsync(store, 1000, 3)).Record.Id;
        }
        File.Delete(Path.Combine(Blobs, missing + ".sealed"));
        using (var f = File.OpenWrite(Path.Combine(Blobs, shortened + ".sealed"))) f.SetLength(999);

        using (var store = SealedBlobStore.Open(DataDir))
        {
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { intact }));
            Assert.That(store.ListWaiting("alice").Select(r => r.Id), Is.EqualTo(new[] { intact }));
            Assert.That(store.Find(missing)!.State, Is.EqualTo(SubmissionState.Damaged));
            Assert.That(store.Find(shortened)!.State, Is.EqualTo(SubmissionState.Damaged));
            Assert.Throws<FileNotFoundException>(() => store.OpenSealed(shortened));
            Assert.That(store.Acknowledge(shortened, "alice"), Is.Null);
            Assert.That(store.GetStats().Waiting, Is.EqualTo(1));
            Assert.That(BlobFiles(), Is.EqualTo(new[] { intact + ".sealed" }), "the short file is a damaged entry's leftover");
        }
    }
    // ---- a compaction cut off: LiteDB renames catalog.db to catalog-backup.db, then catalog-temp.db to catalog.db ----

    private async Task<List<string>> StoreThreeAsync()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var ids = new List<string>();
        for (var i = 0; i < 3; i++) ids.Add((await SealedBlobStoreTests.StoreAsync(store, 1000 + i, i)).Record.Id);
        return ids;
    }

    private string Catalog(string name) => Path.Combine(DataDir, name);

    [Test]
    public async Task A_compaction_cut_between_its_renames_gets_its_catalog_back_from_the_backup()
    {
        var ids = await StoreThreeAsync();
        File.Move(Catalog("catalog.db"), Catalog("catalog-backup-1.db"));       // the rebuild's first rename
        File.WriteAllText(Catalog("catalog-backup.db"), "an older backup left by a cut-off compaction");
        File.Copy(Catalog("catalog-backup-1.db"), Catalog("catalog-temp-1.db"));  // the new catalog, never renamed in
        File.WriteAllText(Catalog("catalog-temp-1-log.db"), "");

        using (var store = SealedBlobStore.Open(DataDir))
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(ids), "every submission still there");
        Assert.That(BlobFiles(), Is.EquivalentTo(ids.Select(id => id + ".sealed")), "no blob swept away");
        Assert.That(Directory.GetFiles(DataDir, "catalog*").Select(Path.GetFileName), Is.EquivalentTo(new[] { "catalog.db" }),
            "the rebuild's leftovers are gone (a backup holds deleted entries)");
    }

    [Test]
    public async Task A_missing_catalog_beside_sealed_blobs_stops_the_open_and_deletes_nothing()
    {
        var ids = await StoreThreeAsync();
        File.Delete(Catalog("catalog.db"));
        var e = Assert.Throws<CatalogMissingException>(() => SealedBlobStore.Open(DataDir).Dispose());
        Assert.That(e!.Message, Does.Contain("catalog.db is missing").And.Contain("3 sealed submission(s)"));
        Assert.That(BlobFiles(), Is.EquivalentTo(ids.Select(id => id + ".sealed")), "nothing swept");
    }

    /// <summary>
    /// A catalog.db LiteDB cannot read (cut short, or overwritten in the middle) stopped the open with LiteDB's or
    /// .NET's words alone ("page type must be collection page", "Unable to translate bytes [D9] at index 0 from
    /// specified code page to Unicode."), naming neither the file nor a way out; `serve` and `recover` said just that.
    /// </summary>
    [TestCase("cut short")]
    [TestCase("overwritten")]
    public async Task A_damaged_catalog_stops_the_open_naming_the_file_and_the_way_out_and_deletes_nothing(string damage)
    {
        var ids = await StoreThreeAsync();
        if (damage == "cut short")
            using (var file = File.OpenWrite(Catalog("catalog.db"))) file.SetLength(8192);  // the header page only
        else
            using (var file = File.OpenWrite(Catalog("catalog.db")))
            {
                file.Position = 8192 + 32;  // the first page after the header
                file.Write(Enumerable.Repeat((byte)0xD9, 200).ToArray());
            }

        var e = Assert.Throws<CatalogDamagedException>(() => SealedBlobStore.Open(DataDir).Dispose());
        Assert.That(e!.Message, Does.Contain(Catalog("catalog.db") + " is damaged").And.Contain("3 sealed submission(s), none deleted")
            .And.Contain("oniondrop recover"));
        Assert.That(e.Message, Does.Not.Contain("\n"));
        Assert.That(BlobFiles(), Is.EquivalentTo(ids.Select(id => id + ".sealed")), "nothing swept");
        Assert.That(DataDirectoryLock.IsHeld(DataDir), Is.False, "the lock is let go");

        // The way out it names: move the catalog aside, then recover.
        var aside = _temp.Combine("damaged");
        Directory.CreateDirectory(aside);
        foreach (var f in Directory.GetFiles(DataDir, "catalog*.db")) File.Move(f, Path.Combine(aside, Path.GetFileName(f)));
        using var store = SealedBlobStore.OpenRecovering(DataDir, null, out var recovered);
        Assert.That(recovered, Is.EqualTo(3));
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(ids));
    }

    [Test]
    public async Task An_empty_catalog_beside_sealed_blobs_stops_the_open_too_and_recover_fills_it()
    {
        // What a recovery cut off while it read the blobs leaves: a catalog that never recorded anything.
        var ids = await StoreThreeAsync();
        File.Delete(Catalog("catalog.db"));
        File.Create(Catalog("catalog.db")).Dispose();
        Assert.Throws<CatalogMissingException>(() => SealedBlobStore.Open(DataDir).Dispose());
        Assert.That(BlobFiles(), Is.EquivalentTo(ids.Select(id => id + ".sealed")), "nothing swept");

        using var store = SealedBlobStore.OpenRecovering(DataDir, null, out var recovered);
        Assert.That(recovered, Is.EqualTo(3));
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(ids));
    }

    [Test]
    public void An_orphan_left_by_the_very_first_commit_is_swept_as_usual()
    {
        // A crash between the first upload's rename and its catalog entry: the catalog, opened before with blobs/
        // empty, counts as in use, so the orphan goes to orphaned/ and the daemon starts (no "catalog missing" refusal).
        SealedBlobStore.Open(DataDir).Dispose();
        var orphan = Path.Combine(Blobs, SubmissionId.New() + ".sealed");
        File.WriteAllBytes(orphan, new byte[100]);
        using var store = SealedBlobStore.Open(DataDir);
        Assert.That(File.Exists(orphan), Is.False);
        Assert.That(OrphanedFiles(), Is.EqualTo(new[] { Path.GetFileName(orphan) }));
        Assert.That(store.ListCommitted(), Is.Empty);
    }

    [Test]
    public async Task Compaction_removes_a_numbered_backup_too()
    {
        await StoreThreeAsync();
        File.WriteAllText(Catalog("catalog-backup.db"), "left by an earlier compaction cut off before its cleanup");
        using var store = SealedBlobStore.Open(DataDir);   // removes it at open...
        File.WriteAllText(Catalog("catalog-backup.db"), "and again, so that LiteDB writes catalog-backup-1.db");
        store.Compact();
        Assert.That(Directory.GetFiles(DataDir, "catalog*backup*"), Is.Empty);
    }
    [Test]
    public async Task A_lost_catalog_is_rebuilt_from_the_blobs_with_their_sizes_hashes_and_days()
    {
        var clock = new MovableClock(new DateTimeOffset(2026, 3, 1, 14, 0, 0, TimeSpan.Zero));
        List<SubmissionRecord> before;
        using (var store = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { Clock = clock }))
        {
            for (var i = 0; i < 4; i++)
            {
                if (i == 2) clock.Now = clock.Now.AddDays(2);
                await SealedBlobStoreTests.StoreAsync(store, 3000 + i, i);
            }
            store.Acknowledge(store.ListCommitted()[0].Id, "alice");   // deleted at once: not to come back
            before = store.ListCommitted().ToList();
        }
        File.Delete(Catalog("catalog.db"));
        Assert.Throws<CatalogMissingException>(() => SealedBlobStore.Open(DataDir).Dispose());

        using (var store = SealedBlobStore.OpenRecovering(DataDir, new SealedBlobStoreOptions { Clock = clock }, out var recovered))
        {
            Assert.That(recovered, Is.EqualTo(3));
            var after = store.ListCommitted();
            Assert.That(after.Select(r => (r.Id, r.Size, r.Sha256Hex, r.ArrivedOn)), Is.EquivalentTo(before.Select(r => (r.Id, r.Size, r.Sha256Hex, r.ArrivedOn))),
                "each blob's size and hash read back, its day from its file's time");
            Assert.That(after.Select(r => r.ArrivedOn), Is.Ordered, "in the order they arrived");
            Assert.That(after.All(r => r.State == SubmissionState.Committed && r.AcknowledgedBy.Count == 0), "waiting for every journalist again");
        }
        using (var store = SealedBlobStore.OpenRecovering(DataDir, null, out var again))
        {
            Assert.That(again, Is.Null, "with a catalog in place, nothing is done");
            Assert.That(store.ListCommitted(), Has.Count.EqualTo(3));
        }
    }

    [Test]
    public void A_lock_file_replaced_by_a_link_is_refused_and_nothing_is_created_through_it()
    {
        // Root's `compact` and `status` open daemon.lock in a directory the daemon's user owns.
        Directory.CreateDirectory(DataDir);
        var target = _temp.Combine("created-by-root");
        File.CreateSymbolicLink(Path.Combine(DataDir, "daemon.lock"), target);
        var e = Assert.Throws<IOException>(() => SealedBlobStore.Open(DataDir).Dispose());
        Assert.That(e!.Message, Does.Contain("symbolic link"));
        Assert.That(File.Exists(target), Is.False, "nothing made through the link");
    }

    private sealed class MovableClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }
}
