using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Storage.Tests;

public class RetentionTests
{
    private sealed class MovableClock : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private MovableClock _clock = null!;
    private TempDirectory _temp = null!;
    private string DataDir => _temp.Combine("data");

    [SetUp] public void SetUp() => (_temp, _clock) = (new TempDirectory(), new MovableClock());
    [TearDown] public void TearDown() => _temp.Dispose();

    private SealedBlobStore Open(SealedBlobStoreOptions options) => SealedBlobStore.Open(DataDir, options with { Clock = _clock });
    private bool FileExists(string id) => File.Exists(_temp.Combine("data", "blobs", id + ".sealed"));

    [Test]
    public async Task By_default_the_first_acknowledgement_deletes_at_once()
    {
        using var store = Open(new SealedBlobStoreOptions());
        var (a, _) = await SealedBlobStoreTests.StoreAsync(store, 100, 1);
        var (b, _) = await SealedBlobStoreTests.StoreAsync(store, 100, 2);

        var acked = store.Acknowledge(a.Id, "alice");
        Assert.That(acked!.State, Is.EqualTo(SubmissionState.Acknowledged));
        Assert.That(acked.AcknowledgedBy, Is.EqualTo(new[] { "alice" }));
        Assert.That(store.Find(a.Id), Is.Null);
        Assert.That(FileExists(a.Id), Is.False);
        Assert.That(store.ListWaiting("bob").Select(r => r.Id), Is.EqualTo(new[] { b.Id }));
        Assert.That(store.Acknowledge(a.Id, "alice"), Is.Null, "already gone");
        Assert.That(FileExists(b.Id));
    }

    [Test]
    public async Task With_quorum_all_each_journalist_gets_it_and_only_the_last_acknowledgement_deletes()
    {
        using var store = Open(new SealedBlobStoreOptions { DeleteAfter = AcknowledgementQuorum.All, Journalists = ["alice", "bob"] });
        var (a, _) = await SealedBlobStoreTests.StoreAsync(store, 100);

        Assert.That(store.Acknowledge(a.Id, "alice")!.State, Is.EqualTo(SubmissionState.Committed));
        Assert.That(store.ListWaiting("alice"), Is.Empty);
        Assert.That(store.ListWaiting("bob").Select(r => r.Id), Is.EqualTo(new[] { a.Id }));
        Assert.That(store.Acknowledge(a.Id, "alice")!.AcknowledgedBy, Is.EqualTo(new[] { "alice" }), "idempotent");
        Assert.That(store.Acknowledge(a.Id, "mallory")!.State, Is.EqualTo(SubmissionState.Committed), "not in the list: does not count");
        Assert.That(FileExists(a.Id));

        Assert.That(store.Acknowledge(a.Id, "bob")!.State, Is.EqualTo(SubmissionState.Acknowledged));
        Assert.That(store.Find(a.Id), Is.Null);
        Assert.That(FileExists(a.Id), Is.False);
    }

    [Test]
    public async Task Acknowledged_blobs_can_be_kept_for_some_days_then_retention_deletes_them()
    {
        using var store = Open(new SealedBlobStoreOptions { KeepDaysAfterAcknowledgement = 3 });
        var (a, _) = await SealedBlobStoreTests.StoreAsync(store, 100);
        store.Acknowledge(a.Id, "alice");
        Assert.That(store.Find(a.Id)!.State, Is.EqualTo(SubmissionState.Acknowledged));
        Assert.That(store.ListWaiting("bob"), Is.Empty, "quorum First: done once anyone has it");
        Assert.That(store.GetStats().Waiting, Is.Zero);

        _clock.Now = _clock.Now.AddDays(2);
        Assert.That(store.ApplyRetention(), Is.Zero);
        Assert.That(FileExists(a.Id));
        _clock.Now = _clock.Now.AddDays(1);
        Assert.That(store.ApplyRetention(), Is.EqualTo(1));
        Assert.That(store.Find(a.Id), Is.Null);
        Assert.That(FileExists(a.Id), Is.False);
    }

    [Test]
    public async Task Unfetched_submissions_are_kept_unless_a_maximum_age_is_set()
    {
        string old, recent;
        using (var store = Open(new SealedBlobStoreOptions()))
        {
            old = (await SealedBlobStoreTests.StoreAsync(store, 100, 1)).Record.Id;
            _clock.Now = _clock.Now.AddDays(5);
            recent = (await SealedBlobStoreTests.StoreAsync(store, 100, 2)).Record.Id;
            _clock.Now = _clock.Now.AddDays(30);
            Assert.That(store.ApplyRetention(), Is.Zero);
            Assert.That(store.GetStats().OldestWaiting, Is.EqualTo(new DateOnly(2026, 3, 1)));
        }
        using (var store = Open(new SealedBlobStoreOptions { MaxUnfetchedDays = 31 }))
        {
            Assert.That(store.ApplyRetention(), Is.EqualTo(1));
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { recent }));
            Assert.That(FileExists(old), Is.False);
        }
    }

    /// <summary>
    /// LiteDB from 5.0.19 to 5.0.21 at least fails a rebuild ("Detected loop in FindAll") once a collection with a
    /// secondary index holds more than 2,550 documents (litedb-org/LiteDB#2827): a drop box with a backlog of 3,000
    /// could no longer compact, by command or after retention.
    /// </summary>
    [Test]
    public async Task Compaction_of_a_catalog_with_thousands_of_waiting_submissions_keeps_every_one()
    {
        using var store = Open(new SealedBlobStoreOptions());
        var ids = new List<string>();
        for (var i = 0; i < 3_000; i++) ids.Add((await SealedBlobStoreTests.StoreAsync(store, 1, i)).Record.Id);
        for (var i = 0; i < 100; i++) store.Acknowledge(ids[i], "alice");

        store.Compact();

        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(ids.Skip(100)));
        Assert.That(store.ListWaiting("bob").Select(r => r.Id), Is.EqualTo(ids.Skip(100)), "in order of arrival: the seq index works");
        var (next, _) = await SealedBlobStoreTests.StoreAsync(store, 1, 3_000);
        Assert.That(store.ListWaiting("bob").Last().Id, Is.EqualTo(next.Id), "a submission after the compaction comes last");
    }

    [Test]
    public async Task Compaction_gives_the_space_of_deleted_entries_back()
    {
        using var store = Open(new SealedBlobStoreOptions());
        for (var i = 0; i < 300; i++)
        {
            var (r, _) = await SealedBlobStoreTests.StoreAsync(store, 1, i);
            store.Acknowledge(r.Id, "alice");
        }
        Assert.That(store.ListCommitted(), Is.Empty);
        // catalog.db and its log together: a checkpoint alone moves bytes from one to the other.
        long CatalogBytes() => SealedBlobStore.CatalogFiles(_temp.Combine("data")).Sum(f => new FileInfo(f).Length);
        var before = CatalogBytes();

        store.Compact();

        var after = CatalogBytes();
        Assert.That(after, Is.LessThan(before), "the 300 deleted entries' pages given back");
        // A second compaction, with nothing deleted since, gives back nothing more.
        Assert.That(store.Compact(), Is.Zero);
        Assert.That(CatalogBytes(), Is.LessThanOrEqualTo(after));
        // LiteDB's rebuild leaves the old file as catalog-backup.db: it must not stay behind.
        Assert.That(Directory.GetFiles(_temp.Combine("data"), "catalog*").Select(Path.GetFileName),
            Has.None.Contains("backup"), "catalog files after compaction");
    }

    [Test]
    public void Nonsense_retention_settings_are_refused_with_a_reason()
    {
        Assert.That(() => Open(new SealedBlobStoreOptions { DeleteAfter = AcknowledgementQuorum.All }),
            Throws.ArgumentException.With.Message.Contains("Journalists"));
        Assert.That(() => Open(new SealedBlobStoreOptions { MaxUnfetchedDays = 0 }),
            Throws.ArgumentException.With.Message.Contains("MaxUnfetchedDays"));
        Assert.That(() => Open(new SealedBlobStoreOptions { Journalists = ["a b"] }),
            Throws.ArgumentException.With.Message.Contains("a b"));
    }
}
