using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// `oniondrop compact` killed inside LiteDB's rebuild, at the one moment with no catalog.db on disk: between
/// its renames of catalog.db to catalog-backup.db and of catalog-temp.db to catalog.db (found by a chaos run:
/// the next start made an empty catalog and swept every blob away as an orphan). strace injects the SIGKILL
/// into the second rename, so the kill lands there every time.
/// </summary>
[Category("EndToEnd")]
public sealed class CompactionKillTests
{
    [Test]
    public async Task A_compaction_killed_between_its_renames_loses_no_submission()
    {
        using var dir = new TempDirectory("oniondrop-compact-kill-");
        var data = dir.Combine("data");
        var ids = new List<string>();
        using (var store = SealedBlobStore.Open(data))
        {
            for (var i = 0; i < 5; i++)
            {
                await using var writer = store.BeginSubmission();
                await writer.Ciphertext.WriteAsync(new byte[10_000 + i]);
                ids.Add((await writer.CommitAsync()).Id);
            }
        }

        var killed = await ChildProcess.RunAsync("strace", ["-f", "-qq", "-o", "/dev/null", "-P", Path.Combine(data, "catalog-temp.db"),
            "-e", "trace=rename,renameat,renameat2", "-e", "inject=rename,renameat,renameat2:signal=KILL",
            "dotnet", Oniondrop.Dll, "compact", "--data-dir", data], TimeSpan.FromMinutes(2));
        Assert.That(killed.ExitCode, Is.Not.Zero, "compact was killed\n" + killed);
        Assert.That(File.Exists(Path.Combine(data, SealedBlobStore.CatalogFileName)), Is.False,
            "the kill landed between the renames\n" + string.Join("\n", Directory.GetFiles(data)));

        // The operator's next `compact` finds the backup, not "no catalog", and the store puts it back as it opens.
        var again = await Oniondrop.RunAsync(["compact", "--data-dir", data], TimeSpan.FromMinutes(2));
        Assert.That(again.ExitCode, Is.Zero, again.ToString());

        Assert.That(Journalist.Committed(data).Select(r => r.Id), Is.EquivalentTo(ids), "every submission after the next open");
        Assert.That(Journalist.BlobFiles(data, "*.sealed"), Has.Length.EqualTo(ids.Count), "no blob swept away");
        Assert.That(Directory.GetFiles(data, "catalog*").Select(Path.GetFileName), Has.None.Contains("backup").And.None.Contains("temp"));
    }
}
