using System.Security.Cryptography;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Storage.Tests;

public class SealedBlobStoreTests
{
    private const UnixFileMode Mode0600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode0700 = Mode0600 | UnixFileMode.UserExecute;

    private TempDirectory _temp = null!;
    private string DataDir => _temp.Combine("data");

    [SetUp] public void SetUp() => _temp = new TempDirectory();
    [TearDown] public void TearDown() => _temp.Dispose();

    internal static async Task<(SubmissionRecord Record, byte[] Bytes)> StoreAsync(ISealedBlobStore store, int size, int seed = 1)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        await using var writer = store.BeginSubmission();
        for (var offset = 0; offset < size; offset += 10_000)
            await writer.Ciphertext.WriteAsync(bytes.AsMemory(offset, Math.Min(10_000, size - offset)));
        return (await writer.CommitAsync(), bytes);
    }

    private string[] BlobFiles() => Directory.GetFiles(Path.Combine(DataDir, "blobs")).Select(Path.GetFileName).ToArray()!;

    [Test]
    public async Task Committed_submission_is_listed_with_its_size_hash_and_day_and_reads_back()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var (record, bytes) = await StoreAsync(store, 123_457);

        Assert.That(SubmissionId.IsValid(record.Id), record.Id);
        Assert.That(record.State, Is.EqualTo(SubmissionState.Committed));
        Assert.That(record.Size, Is.EqualTo(bytes.Length));
        Assert.That(record.Sha256Hex, Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(bytes))));
        Assert.That(record.ArrivedOn, Is.EqualTo(DateOnly.FromDateTime(DateTime.UtcNow)));
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { record.Id }));
        Assert.That(store.Find(record.Id), Is.EqualTo(record).Using<SubmissionRecord>((a, b) => a.Id == b.Id && a.Sha256Hex == b.Sha256Hex));
        using var read = store.OpenSealed(record.Id);
        var copy = new MemoryStream();
        read.CopyTo(copy);
        Assert.That(copy.ToArray(), Is.EqualTo(bytes));
        Assert.That(BlobFiles(), Is.EqualTo(new[] { record.Id + ".sealed" }));
    }

    [Test]
    public async Task A_submission_is_invisible_until_commit_and_gone_entirely_when_disposed_without_it()
    {
        using var store = SealedBlobStore.Open(DataDir);
        string id;
        await using (var writer = store.BeginSubmission())
        {
            id = writer.Id;
            await writer.Ciphertext.WriteAsync(new byte[5000]);
            Assert.That(store.ListCommitted(), Is.Empty);
            Assert.That(store.Find(id), Is.Null);
            Assert.Throws<FileNotFoundException>(() => store.OpenSealed(id));
            Assert.That(BlobFiles(), Is.EqualTo(new[] { id + ".partial" }));
        }
        Assert.That(BlobFiles(), Is.Empty);
        Assert.That(store.ListCommitted(), Is.Empty);
        Assert.That(store.GetStats(), Is.EqualTo(new StoreStats(0, 0, null)));
    }

    [Test]
    public async Task Files_and_directories_are_private()
    {
        using var store = SealedBlobStore.Open(DataDir);
        await using var writer = store.BeginSubmission();
        await writer.Ciphertext.WriteAsync(new byte[10]);
        Assert.That(File.GetUnixFileMode(Path.Combine(DataDir, "blobs", writer.Id + ".partial")), Is.EqualTo(Mode0600));
        await writer.CommitAsync();

        Assert.That(File.GetUnixFileMode(DataDir), Is.EqualTo(Mode0700));
        Assert.That(File.GetUnixFileMode(Path.Combine(DataDir, "blobs")), Is.EqualTo(Mode0700));
        Assert.That(File.GetUnixFileMode(Path.Combine(DataDir, "blobs", writer.Id + ".sealed")), Is.EqualTo(Mode0600));
        foreach (var file in Directory.GetFiles(DataDir))
            Assert.That(File.GetUnixFileMode(file), Is.EqualTo(Mode0600), file);
        Assert.That(Directory.GetFiles(DataDir).Select(Path.GetFileName), Does.Contain("catalog.db").And.Contain("daemon.lock"));
    }

    [Test]
    public void An_existing_data_directory_with_loose_modes_is_tightened()
    {
        Directory.CreateDirectory(DataDir);
        File.SetUnixFileMode(DataDir, Mode0700 | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        using var store = SealedBlobStore.Open(DataDir);
        Assert.That(File.GetUnixFileMode(DataDir), Is.EqualTo(Mode0700));
    }

    [Test]
    public async Task Many_uploads_stream_in_parallel_and_get_distinct_ids_and_sequence_numbers_in_commit_order()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var results = await Task.WhenAll(Enumerable.Range(1, 40).Select(i => Task.Run(() => StoreAsync(store, 20_000 + i, i))));

        var listed = store.ListCommitted();
        Assert.That(listed, Has.Count.EqualTo(40));
        Assert.That(listed.Select(r => r.Id).Distinct().Count(), Is.EqualTo(40));
        Assert.That(listed.Select(r => r.Sequence), Is.EqualTo(Enumerable.Range(1, 40).Select(i => (long)i)));
        // Commits finishing together share a transaction: each upload must still get its own entry back.
        Assert.That(results.Select(r => (r.Record.Id, r.Record.Sequence, r.Record.Size)),
            Is.EquivalentTo(listed.Select(r => (r.Id, r.Sequence, r.Size))));
        Assert.That(results.Select(r => r.Record.Size), Is.EqualTo(Enumerable.Range(1, 40).Select(i => 20_000L + i)));
        foreach (var (record, bytes) in results)
        {
            using var read = store.OpenSealed(record.Id);
            Assert.That(SHA256.HashData(read), Is.EqualTo(SHA256.HashData(bytes)));
        }
        Assert.That(store.ListCommitted(afterSequence: 35).Select(r => r.Sequence), Is.EqualTo(new long[] { 36, 37, 38, 39, 40 }));
    }

    [Test]
    public async Task Sequence_numbers_are_never_reused_after_deletion_and_reopening()
    {
        long last;
        using (var store = SealedBlobStore.Open(DataDir))
        {
            var (a, _) = await StoreAsync(store, 10);
            var (b, _) = await StoreAsync(store, 10);
            store.Acknowledge(a.Id, "alice");
            store.Acknowledge(b.Id, "alice");
            Assert.That(store.ListCommitted(), Is.Empty);
            last = b.Sequence;
        }
        using (var store = SealedBlobStore.Open(DataDir))
        {
            var (c, _) = await StoreAsync(store, 10);
            Assert.That(c.Sequence, Is.EqualTo(last + 1));
        }
    }

    [Test]
    public void A_second_process_cannot_open_the_store_while_the_first_holds_it()
    {
        using var store = SealedBlobStore.Open(DataDir);
        Assert.That(DataDirectoryLock.IsHeld(DataDir));
        var e = Assert.Throws<StoreLockedException>(() => SealedBlobStore.Open(DataDir));
        Assert.That(e!.Message, Does.Contain("daemon.lock"));
        store.Dispose();
        Assert.That(DataDirectoryLock.IsHeld(DataDir), Is.False);
        using var again = SealedBlobStore.Open(DataDir);
    }

    /// <summary>
    /// What a pull served directly watches for (docs/pull-protocol.md, "The server side"): a process waiting for the
    /// store says so for as long as it waits, and only then; one that looks, or opens without waiting, says nothing.
    /// </summary>
    [Test]
    public async Task A_process_waiting_for_the_store_is_seen_while_it_waits_and_only_then()
    {
        var store = SealedBlobStore.Open(DataDir);
        Assert.That(DataDirectoryLock.IsWanted(DataDir), Is.False);
        Assert.Throws<StoreLockedException>(() => SealedBlobStore.Open(DataDir));
        Assert.That(DataDirectoryLock.IsWanted(DataDir), Is.False, "one that does not wait asks nothing");
        Assert.That(File.Exists(Path.Combine(DataDir, DataDirectoryLock.WantedFileName)), Is.False, "looking makes no file");

        var waiter = Task.Run(() => SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { LockWait = TimeSpan.FromSeconds(30) }));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!DataDirectoryLock.IsWanted(DataDir))
        {
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "the waiter never said it waits");
            await Task.Delay(20);
        }
        Assert.That(waiter.IsCompleted, Is.False);
        store.Dispose();
        using var taken = await waiter.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.That(DataDirectoryLock.IsWanted(DataDir), Is.False, "nobody waits once it holds the store");
    }

    /// <summary>
    /// The daemon's log and its refusal to start say what held the store: its holder names itself in daemon.lock for as long
    /// as it holds it, and one that names nothing (an older oniondrop, a probe) is not taken for the last one that did.
    /// </summary>
    [Test]
    public async Task A_process_waiting_for_the_store_learns_what_held_it()
    {
        var compact = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { Holder = StoreHolder.Compact });
        Assert.That(DataDirectoryLock.HeldBy(DataDir), Is.EqualTo(StoreHolder.Compact));
        var refused = Assert.Throws<StoreLockedException>(() => SealedBlobStore.Open(DataDir));
        Assert.That(refused!.Message, Is.EqualTo($"{DataDir} is in use by oniondrop compact (it holds daemon.lock)"));
        Assert.That(DataDirectoryLock.IsHeld(DataDir), "a probe");
        Assert.That(DataDirectoryLock.HeldBy(DataDir), Is.EqualTo(StoreHolder.Compact), "a probe names nothing, and leaves the name");

        var waiter = Task.Run(() => SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { LockWait = TimeSpan.FromSeconds(30), Holder = StoreHolder.Daemon }));
        while (!DataDirectoryLock.IsWanted(DataDir)) await Task.Delay(20);
        await Task.Delay(300);
        compact.Dispose();
        using (var daemon = await waiter.WaitAsync(TimeSpan.FromSeconds(10)))
        {
            Assert.That(daemon.WaitedFor?.Holder, Is.EqualTo(StoreHolder.Compact));
            Assert.That(daemon.WaitedFor?.Time, Is.GreaterThan(TimeSpan.FromSeconds(0.2)));
            Assert.That(DataDirectoryLock.HeldBy(DataDir), Is.EqualTo(StoreHolder.Daemon));
        }
        Assert.That(File.ReadAllBytes(Path.Combine(DataDir, DataDirectoryLock.FileName)), Is.Empty, "no name once let go");

        using (var unnamed = SealedBlobStore.Open(DataDir))
        {
            Assert.That(DataDirectoryLock.HeldBy(DataDir), Is.EqualTo(StoreHolder.Unknown));
            Assert.That(Assert.Throws<StoreLockedException>(() => SealedBlobStore.Open(DataDir))!.Message,
                Is.EqualTo($"{DataDir} is in use by another oniondrop process (it holds daemon.lock)"));
        }
        using (var first = SealedBlobStore.Open(DataDir))
            Assert.That(first.WaitedFor, Is.Null, "it did not wait");
    }

    [Test]
    public void Ids_that_are_not_canonical_never_reach_the_file_system()
    {
        using var store = SealedBlobStore.Open(DataDir);
        foreach (var bad in new[] { "../catalog.db", "", "ABCD-EFGH-JKMN-PQRS-TVWX/../../x", "abcd-efgh-jkmn-pqrs-tvwx" })
        {
            Assert.That(store.Find(bad), Is.Null, bad);
            Assert.Throws<FileNotFoundException>(() => store.OpenSealed(bad), bad);
            Assert.That(store.Acknowledge(bad, "alice"), Is.Null, bad);
        }
    }

    [Test]
    public void Receipt_references_are_normalised_as_people_type_them()
    {
        var id = SubmissionId.New();
        Assert.That(SubmissionId.IsValid(id), id);
        Assert.That(SubmissionId.Normalize(id.ToLowerInvariant().Replace("-", " ")), Is.EqualTo(id));
        Assert.That(SubmissionId.Normalize("o1l1-iiii-0000-aaaa-zzzz"), Is.EqualTo("0111-1111-0000-AAAA-ZZZZ"));
        Assert.That(SubmissionId.Normalize("0111-1111-0000-AAAA-ZZZ"), Is.Null);
        Assert.That(SubmissionId.Normalize("0111-1111-0000-AAAA-ZZZU"), Is.Null);
        Assert.That(Enumerable.Range(0, 1000).Select(_ => SubmissionId.New()).Distinct().Count(), Is.EqualTo(1000));
    }
}
