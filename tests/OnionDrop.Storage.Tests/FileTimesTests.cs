using System.Globalization;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Storage.Tests;

/// <summary>
/// The catalog keeps the arrival day only; the file system must not keep more. A blob's access and
/// modification times are its day's midnight (UTC) from its commit on, BlurFileTimes leaves no change
/// time (ctime) older than itself, on blobs, blobs/ or the catalog, and a blob's birth time is that of a
/// spare file made before its upload began.
/// </summary>
public class FileTimesTests
{
    private sealed class FixedClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }

    private TempDirectory _temp = null!;
    private string DataDir => _temp.Combine("data");

    [SetUp] public void SetUp() => _temp = new TempDirectory();
    [TearDown] public void TearDown() => _temp.Dispose();

    [Test]
    public async Task A_committed_blob_shows_its_arrival_day_and_not_its_time()
    {
        var clock = new FixedClock(new DateTimeOffset(2026, 3, 1, 14, 37, 12, TimeSpan.Zero));
        using var store = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { Clock = clock });
        var (record, _) = await SealedBlobStoreTests.StoreAsync(store, 5000);

        var blob = Path.Combine(DataDir, "blobs", record.Id + ".sealed");
        var midnight = new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc);
        Assert.That(File.GetLastWriteTimeUtc(blob), Is.EqualTo(midnight), "mtime");
        Assert.That(File.GetLastAccessTimeUtc(blob), Is.EqualTo(midnight), "atime");
    }

    [Test]
    public async Task Uploads_leave_their_day_and_not_their_time_on_the_folders_and_the_catalog()
    {
        var clock = new FixedClock(new DateTimeOffset(2026, 3, 1, 14, 37, 12, TimeSpan.Zero));
        using var store = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { Clock = clock });
        await SealedBlobStoreTests.StoreAsync(store, 5000);
        await using (var cutOff = store.BeginSubmission()) await cutOff.Ciphertext.WriteAsync(new byte[10_000]);
        await using (var inProgress = store.BeginSubmission())
        {
            // What a copy of the data directory that keeps modification times (cp -a, rsync -t) would carry off.
            var midnight = new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc);
            var paths = new[] { DataDir, Path.Combine(DataDir, "blobs"), Path.Combine(DataDir, "spare") }.Concat(SealedBlobStore.CatalogFiles(DataDir)).ToList();
            Assert.That(paths, Has.Count.GreaterThanOrEqualTo(4), "the folders and at least catalog.db");
            Assert.Multiple(() =>
            {
                foreach (var path in paths) Assert.That(File.GetLastWriteTimeUtc(path), Is.EqualTo(midnight), $"mtime of {path}");
            });
        }
    }

    [Test]
    public async Task Blurring_sets_every_file_to_its_day_and_leaves_no_change_time_from_before_it()
    {
        var clock = new FixedClock(new DateTimeOffset(2026, 3, 1, 9, 0, 0, TimeSpan.Zero));
        using var store = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { Clock = clock });
        var (first, _) = await SealedBlobStoreTests.StoreAsync(store, 100, 1);
        clock.Now = clock.Now.AddDays(1);
        var (second, _) = await SealedBlobStoreTests.StoreAsync(store, 100, 2);
        Thread.Sleep(20);   // change times before the pass must be told apart from those it sets

        var before = DateTimeOffset.UtcNow;
        Assert.That(store.BlurFileTimes(), Is.EqualTo(2));

        var blobs = Path.Combine(DataDir, "blobs");
        Assert.That(File.GetLastWriteTimeUtc(Path.Combine(blobs, first.Id + ".sealed")), Is.EqualTo(new DateTime(2026, 3, 1, 0, 0, 0, DateTimeKind.Utc)));
        Assert.That(File.GetLastWriteTimeUtc(Path.Combine(blobs, second.Id + ".sealed")), Is.EqualTo(new DateTime(2026, 3, 2, 0, 0, 0, DateTimeKind.Utc)));
        var spares = Path.Combine(DataDir, "spare");
        var touched = new[] { Path.Combine(blobs, first.Id + ".sealed"), Path.Combine(blobs, second.Id + ".sealed"), blobs, spares }
            .Concat(Directory.GetFiles(spares)).Concat(Directory.GetFiles(DataDir, "catalog*.db")).ToList();
        Assert.That(touched, Has.Count.GreaterThanOrEqualTo(5 + 30), "both blobs, blobs/, spare/ and its files, and at least catalog.db");
        foreach (var path in touched)
        {
            Assert.That(ChangeTime(path), Is.GreaterThanOrEqualTo(before.AddMilliseconds(-5)), $"ctime of {Path.GetFileName(path)}");
            Assert.That(File.GetLastWriteTimeUtc(path).TimeOfDay, Is.EqualTo(TimeSpan.Zero), $"mtime of {Path.GetFileName(path)}");
        }
    }

    [Test]
    public async Task A_blob_is_born_when_its_spare_file_was_made_not_when_its_upload_began()
    {
        using var store = SealedBlobStore.Open(DataDir);
        Assert.That(Directory.GetFiles(Path.Combine(DataDir, "spare")), Has.Length.EqualTo(32), "made at open");
        var spareBirth = BirthTime(Directory.GetFiles(Path.Combine(DataDir, "spare"))[0]);
        if (spareBirth is null) Assert.Ignore("this file system keeps no birth times");
        Thread.Sleep(50);

        var uploadBegan = DateTimeOffset.UtcNow;
        var (record, bytes) = await SealedBlobStoreTests.StoreAsync(store, 70_000);
        var blob = Path.Combine(DataDir, "blobs", record.Id + ".sealed");
        Assert.That(BirthTime(blob), Is.LessThan(uploadBegan.AddMilliseconds(-20)), "born with the spares, before the upload");
        Assert.That(File.ReadAllBytes(blob), Is.EqualTo(bytes));
        Assert.That(File.GetUnixFileMode(blob), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(Directory.GetFiles(Path.Combine(DataDir, "spare")), Has.Length.EqualTo(31));
    }

    [Test]
    public async Task Uploads_refused_or_cut_off_give_their_files_back_emptied_so_they_do_not_use_up_the_spares()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var spares = Path.Combine(DataDir, "spare");
        if (Directory.GetFiles(spares).Any(f => BirthTime(f) is null)) Assert.Ignore("this file system keeps no birth times");

        Thread.Sleep(50);
        var abandonedBegan = DateTimeOffset.UtcNow;
        // Far more abandoned uploads than spares, some of them after writing ciphertext.
        for (var i = 0; i < 100; i++)
        {
            await using var writer = store.BeginSubmission();
            if (i % 2 == 0) await writer.Ciphertext.WriteAsync(new byte[100_000]);
        }
        Assert.That(Directory.GetFiles(Path.Combine(DataDir, "blobs")), Is.Empty, "nothing left in blobs/");
        var left = Directory.GetFiles(spares);
        Assert.That(left, Has.Length.EqualTo(32), "every spare is still there");
        Assert.That(left.Select(f => new FileInfo(f).Length), Has.All.Zero, "emptied");
        Assert.That(left.Select(BirthTime), Has.All.LessThan(abandonedBegan), "the same files, born when they were made");
        Assert.That(left.Select(f => File.GetLastWriteTimeUtc(f).TimeOfDay), Has.All.EqualTo(TimeSpan.Zero),
            "a file given back keeps no trace of when its upload ended (its day's midnight)");

        var uploadBegan = DateTimeOffset.UtcNow;
        var (record, _) = await SealedBlobStoreTests.StoreAsync(store, 1000);
        Assert.That(BirthTime(Path.Combine(DataDir, "blobs", record.Id + ".sealed")), Is.LessThan(uploadBegan), "a real upload still gets a spare");
    }

    [Test]
    public async Task When_the_spares_run_out_uploads_make_their_own_files_until_the_next_refill()
    {
        using (var store = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { SpareFiles = 2 }))
        {
            var stored = new List<(SubmissionRecord Record, byte[] Bytes)>();
            for (var i = 0; i < 3; i++) stored.Add(await SealedBlobStoreTests.StoreAsync(store, 1000 + i, i));
            Assert.That(store.ListCommitted(), Has.Count.EqualTo(3));
            foreach (var (record, bytes) in stored)
                Assert.That(File.ReadAllBytes(Path.Combine(DataDir, "blobs", record.Id + ".sealed")), Is.EqualTo(bytes));
            Assert.That(Directory.GetFiles(Path.Combine(DataDir, "spare")), Is.Empty);

            Assert.That(store.RefillSpareFiles(), Is.EqualTo(2));
            Assert.That(store.RefillSpareFiles(), Is.Zero, "already full");
        }
        // After a restart the files left in spare/ are used, not made again.
        using (var reopened = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { SpareFiles = 2 }))
        {
            Assert.That(Directory.GetFiles(Path.Combine(DataDir, "spare")), Has.Length.EqualTo(2));
            await SealedBlobStoreTests.StoreAsync(reopened, 10);
            Assert.That(Directory.GetFiles(Path.Combine(DataDir, "spare")), Has.Length.EqualTo(1));
        }
    }

    /// <summary>The file's birth time (statx), or null where the file system keeps none.</summary>
    private static DateTimeOffset? BirthTime(string path)
    {
        var r = ChildProcess.RunAsync(ChildProcess.StartInfo("stat", ["-c", "%.9W", path]), TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        var text = r.Stdout.Trim();
        if (text is "-" or "0" || text.StartsWith("0.", StringComparison.Ordinal)) return null;
        return DateTimeOffset.FromUnixTimeMilliseconds((long)(decimal.Parse(text, CultureInfo.InvariantCulture) * 1000));
    }

    /// <summary>The inode's change time, which .NET does not expose: coreutils' stat.</summary>
    private static DateTimeOffset ChangeTime(string path)
    {
        var r = ChildProcess.RunAsync(ChildProcess.StartInfo("stat", ["-c", "%.9Z", path]), TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
        Assert.That(r.ExitCode, Is.EqualTo(0), r.Stderr);
        var seconds = decimal.Parse(r.Stdout.Trim(), CultureInfo.InvariantCulture);
        return DateTimeOffset.FromUnixTimeMilliseconds((long)(seconds * 1000));
    }
}
