using System.Security.Cryptography;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Storage.Tests;

/// <summary>
/// A data directory made by an older build (fixtures/README.md says which and how) must still open with this
/// one: the same submissions listed, the acknowledged one not waiting, each waiting blob opening to its content.
/// A change to the catalog's fields or the blobs' layout that forgets existing installs fails here.
/// </summary>
public class OlderDataDirectoryTests
{
    private const string Fixture = "datadir-72fd4a1";
    private static readonly DateOnly MadeOn = new(2026, 12, 3);

    private const string AcknowledgedId = "P9W5-TC3F-Q0SX-WGDV-EZ1A";
    private const string MessageOnlyId = "V3KF-5HWA-00VT-5T2D-9QGE";
    private const string FileOnlyId = "MXZC-W61H-PB6G-629R-HFES";

    private TempDirectory _temp = null!;
    private string DataDir => _temp.Combine("data");

    [SetUp]
    public void SetUp()
    {
        _temp = new TempDirectory();
        // A copy: opening sweeps and may rewrite the catalog, and the checked-in files must stay as they were made.
        CopyDirectory(Path.Combine(TestContext.CurrentContext.TestDirectory, "fixtures", Fixture), DataDir);
    }

    [TearDown] public void TearDown() => _temp.Dispose();

    [Test]
    public void Catalog_made_by_an_older_build_lists_its_submissions_with_their_sizes_and_hashes()
    {
        using var store = SealedBlobStore.Open(DataDir);

        var committed = store.ListCommitted();
        Assert.That(committed.Select(r => r.Id), Is.EqualTo(new[] { AcknowledgedId, MessageOnlyId, FileOnlyId }), "pull order");
        Assert.That(committed.Select(r => r.Sequence), Is.EqualTo(new long[] { 1, 2, 3 }));
        foreach (var record in committed)
        {
            var blob = File.ReadAllBytes(Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName, record.Id + ".sealed"));
            Assert.That(record.Size, Is.EqualTo(blob.Length), record.Id);
            Assert.That(record.Sha256Hex, Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(blob))), record.Id);
            Assert.That(record.ArrivedOn, Is.EqualTo(MadeOn), record.Id);
        }
        Assert.That(committed.Select(r => r.Size), Is.EqualTo(new long[] { 537, 293, 507 }));
        Assert.That(committed[0].Sha256Hex, Is.EqualTo("08bd318a51298a6ed64b762f2dfa46d5f57879e1f3cd6c570351e4655d6d1540"));

        var acknowledged = store.Find(AcknowledgedId)!;
        Assert.That(acknowledged.State, Is.EqualTo(SubmissionState.Acknowledged));
        Assert.That(acknowledged.AcknowledgedBy, Is.EqualTo(new[] { "alice" }));
        Assert.That(store.ListWaiting("alice").Select(r => r.Id), Is.EqualTo(new[] { MessageOnlyId, FileOnlyId }));
        Assert.That(store.GetStats(), Is.EqualTo(new StoreStats(Waiting: 2, WaitingBytes: 293 + 507, OldestWaiting: MadeOn)));
    }

    [Test]
    public void Each_waiting_blob_of_an_older_build_opens_with_the_key_to_what_was_uploaded()
    {
        using var store = SealedBlobStore.Open(DataDir);
        using var key = JournalistKey.Load(Path.Combine(RepoPaths.Vectors, "journalist.key"));

        var messageOnly = OpenWaiting(store, key, MessageOnlyId);
        Assert.That(messageOnly.Message, Is.EqualTo("message two, waiting"));
        Assert.That(messageOnly.Files, Is.Empty);

        var fileOnly = OpenWaiting(store, key, FileOnlyId);
        Assert.That(fileOnly.Message, Is.Empty);
        Assert.That(fileOnly.Files.Select(f => f.OriginalName), Is.EqualTo(new[] { "waiting.txt" }));
        Assert.That(File.ReadAllText(Path.Combine(fileOnly.Directory, fileOnly.Files[0].SafeName)), Is.EqualTo("second: a waiting file\n"));
    }

    private OpenedSubmission OpenWaiting(SealedBlobStore store, JournalistKey key, string id)
    {
        Assert.That(store.ListWaiting("alice").Select(r => r.Id), Does.Contain(id));
        var output = _temp.Combine("opened-" + id);
        Directory.CreateDirectory(output);
        using var blob = store.OpenSealed(id);
        return SubmissionOpener.Open(blob, key, output, id + ".sealed");
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        foreach (var dir in Directory.EnumerateDirectories(from))
            CopyDirectory(dir, Path.Combine(to, Path.GetFileName(dir)));
        foreach (var file in Directory.EnumerateFiles(from))
        {
            var target = Path.Combine(to, Path.GetFileName(file));
            File.Copy(file, target);
            File.SetUnixFileMode(target, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
