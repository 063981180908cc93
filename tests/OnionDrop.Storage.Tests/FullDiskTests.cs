using OnionDrop.Testing;

namespace OnionDrop.Storage.Tests;

/// <summary>
/// A full disk at the moment of commit: the blob is written, the catalog's turn comes, and there is no room.
/// The commit fails (and says why), nothing is left behind, and once there is room the same open store reads and
/// commits again, with no restart (a daemon stays up for months).
/// </summary>
public sealed class FullDiskTests
{
    [Test]
    public async Task A_commit_on_a_full_disk_fails_cleanly_and_the_same_store_commits_again_once_there_is_room()
    {
        await using var disk = await SmallTmpfs.MountAsync(16);
        using var store = SealedBlobStore.Open(Path.Combine(disk.Path, "data"));
        var (before, _) = await SealedBlobStoreTests.StoreAsync(store, 100_000);

        // An empty blob has nothing left to write at commit: only the catalog meets the full disk.
        var filler = Path.Combine(disk.Path, "filler");
        SmallTmpfs.Fill(filler);
        var spares = Directory.GetFiles(Path.Combine(store.DataDir, "spare")).Length;
        for (var i = 0; i < 2; i++)
            Assert.That(await CommitEmptyAsync(store), Does.Contain("No space left"), $"commit {i} on a full disk");
        Assert.That(Directory.GetFiles(store.BlobsDir), Is.EqualTo(new[] { Path.Combine(store.BlobsDir, before.Id + ".sealed") }), "failed commits leave no file");
        Assert.That(Directory.GetFiles(Path.Combine(store.DataDir, "spare")), Has.Length.EqualTo(spares),
            "a refused commit gives its file back to the spares, as a refused upload does: used up, later uploads' files would be born at their start");
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { before.Id }), "refused for want of room, the catalog itself is fine: it reads on");

        // Room again, but less than the catalog keeps for itself: still refused, for the same reason.
        File.Delete(filler);
        SmallTmpfs.Fill(filler, leave: SealedBlobStore.CatalogHeadroomBytes / 2);
        Assert.That(await CommitEmptyAsync(store), Does.Contain("No space left"));

        File.Delete(filler);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { before.Id }), "reads work");
        var (after, _) = await SealedBlobStoreTests.StoreAsync(store, 100_000, seed: 2);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { before.Id, after.Id }), "commits work again");
        Assert.That(after.Sequence, Is.EqualTo(before.Sequence + 1), "the failed commits took no sequence number");
    }

    [Test]
    public async Task When_LiteDB_itself_meets_a_full_disk_its_write_fails_and_the_catalog_reopens_once_there_is_room()
    {
        await using var disk = await SmallTmpfs.MountAsync(16);
        using var store = SealedBlobStore.Open(Path.Combine(disk.Path, "data"),
            new SealedBlobStoreOptions { KeepDaysAfterAcknowledgement = 30 });
        var (kept, _) = await SealedBlobStoreTests.StoreAsync(store, 100_000);

        // Acknowledgements keep no headroom (they lead to deletions, which free space): on a full disk they reach
        // LiteDB, whose log takes them until its file must grow. Then its write fails, and the store says so.
        var filler = Path.Combine(disk.Path, "filler");
        SmallTmpfs.Fill(filler);
        string? failure = null;
        for (var i = 0; i < 2000 && failure is null; i++)
        {
            try { store.Acknowledge(kept.Id, $"journalist-{i}"); }
            catch (IOException e) { failure = e.Message; }
        }
        Assert.That(failure, Does.Contain("No space left"), "an acknowledgement failed for want of space");
        Assert.That(() => store.ListCommitted(), Throws.InstanceOf<IOException>(), "the catalog stays shut while the disk is full");

        File.Delete(filler);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { kept.Id }), "reads work again, from a reopened catalog");
        var (after, _) = await SealedBlobStoreTests.StoreAsync(store, 100_000, seed: 2);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { kept.Id, after.Id }), "commits work again");
    }

    [Test]
    public async Task The_first_write_after_an_open_meeting_a_full_disk_fails_and_hangs_nothing()
    {
        // LiteDB's first log write after each open runs on a thread of its own, whose failure once left the
        // store waiting forever, with every reader behind it (a daemon restarted on a full disk, then a fetch).
        await using var disk = await SmallTmpfs.MountAsync(16);
        var dataDir = Path.Combine(disk.Path, "data");
        var options = new SealedBlobStoreOptions { KeepDaysAfterAcknowledgement = 30 };
        string id;
        using (var first = SealedBlobStore.Open(dataDir, options)) id = (await SealedBlobStoreTests.StoreAsync(first, 100_000)).Record.Id;

        var store = SealedBlobStore.Open(dataDir, options);
        var filler = Path.Combine(disk.Path, "filler");
        SmallTmpfs.Fill(filler);
        var acknowledged = Task.Run(() => store.Acknowledge(id, "alice"));
        var outcome = await Task.WhenAny(acknowledged, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.That(outcome, Is.SameAs(acknowledged), "the acknowledgement hangs");
        Assert.That(acknowledged.Exception?.InnerException?.Message, Does.Contain("No space left").Or.Contain("closed itself"));

        File.Delete(filler);
        var listed = Task.Run(() => store.ListCommitted());
        Assert.That(await Task.WhenAny(listed, Task.Delay(TimeSpan.FromSeconds(30))), Is.SameAs(listed), "reads hang");
        Assert.That((await listed).Select(r => r.Id), Is.EqualTo(new[] { id }));
        var disposed = Task.Run(store.Dispose);
        Assert.That(await Task.WhenAny(disposed, Task.Delay(TimeSpan.FromSeconds(30))), Is.SameAs(disposed), "Dispose hangs");
    }

    /// <returns>the failure's text, or "committed"</returns>
    private static async Task<string> CommitEmptyAsync(SealedBlobStore store)
    {
        try
        {
            await using var writer = store.BeginSubmission();
            await writer.CommitAsync();
            return "committed";
        }
        catch (IOException e) { return e.Message; }
    }
    [Test]
    public async Task A_compaction_that_meets_a_full_disk_fails_and_leaves_no_half_made_catalog()
    {
        await using var disk = await SmallTmpfs.MountAsync(16);
        var data = Path.Combine(disk.Path, "data");
        using var store = SealedBlobStore.Open(data);
        var (kept, _) = await SealedBlobStoreTests.StoreAsync(store, 100_000);
        var filler = Path.Combine(disk.Path, "filler");
        SmallTmpfs.Fill(filler);

        Assert.That(() => store.Compact(), Throws.InstanceOf<IOException>().With.Message.Contains("compacting needs"));
        Assert.That(Directory.GetFiles(data, "catalog-temp*"), Is.Empty, "the rebuild's new file goes with its failure");

        File.Delete(filler);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { kept.Id }));
        store.Compact();
        Assert.That(Directory.GetFiles(data, "catalog-temp*").Concat(Directory.GetFiles(data, "catalog-backup*")), Is.Empty,
            "and a later compaction leaves nothing behind either");
    }
}
