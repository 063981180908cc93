using System.Diagnostics;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// The daemon started (by the operator, or by systemd restarting it) while `oniondrop compact` or `recover` holds the
/// store, run with the daemon stopped. strace stops the command (SIGSTOP) right after a chosen system call, so it is
/// caught at that very point; the real daemon starts and waits for the store; then the command goes on (SIGCONT).
/// compact gives way if its rebuild has not begun (the catalog as it was), and finishes one under way (LiteDB's rebuild
/// cannot stop halfway); recover finishes (the daemon needs what it makes). The daemon says what it waited for.
/// </summary>
public class DaemonStartDuringCompactTests
{
    private const int Kept = 5;
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");
    private string Catalog => Path.Combine(DataDir, SealedBlobStore.CatalogFileName);
    private string Blobs => Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName);

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    [Test]
    public async Task Compact_gives_way_to_the_daemon_starting_before_its_rebuild_and_leaves_the_catalog_as_it_was()
    {
        var kept = await FillAndDeleteAsync();
        var inode = await InodeAsync(Catalog);

        // Stopped as it opens the store (it counts the sealed files), before anything is rebuilt.
        var compact = await RunStoppedAfterAsync("openat", Blobs, "compact", "--data-dir", DataDir);
        var said = await StartTheDaemonMeanwhileAsync(compact);

        var result = await compact.Run;
        Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString());
        Assert.That(result.Stderr.Trim(), Is.EqualTo("oniondrop compact: the daemon started and takes the store over: nothing was compacted; " +
                                                     "run compact again: it asks the daemon now"));
        Assert.That(await InodeAsync(Catalog), Is.EqualTo(inode), "catalog.db not rebuilt: the same file");
        Assert.That(said, Has.One.Contains($"store: {DataDir} was in use by oniondrop compact, which let go after"));
        AssertKept(kept);
    }

    [Test]
    public async Task A_rebuild_under_way_when_the_daemon_starts_is_finished_and_the_daemon_waits_for_it()
    {
        var kept = await FillAndDeleteAsync();
        var before = new FileInfo(Catalog).Length;

        // Stopped between LiteDB's renames of catalog.db to catalog-backup.db and of catalog-temp.db to catalog.db.
        var compact = await RunStoppedAfterAsync("rename,renameat,renameat2", Catalog, "compact", "--data-dir", DataDir);
        Assert.That(File.Exists(Catalog), Is.False, "stopped inside the rebuild, with no catalog.db on disk");
        var said = await StartTheDaemonMeanwhileAsync(compact);

        var result = await compact.Run;
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.Stdout, Does.Contain("compacted here"));
        Assert.That(new FileInfo(Catalog).Length, Is.LessThan(before), "the rebuild finished before the daemon opened the catalog");
        Assert.That(said, Has.One.Contains($"store: {DataDir} was in use by oniondrop compact, which let go after"));
        AssertKept(kept);
    }

    [Test]
    public async Task Recover_finishes_and_the_daemon_waits_for_the_catalog_it_makes()
    {
        var kept = await FillAndDeleteAsync();
        File.Delete(Catalog);

        // Stopped as it reads the first sealed file for its SHA-256: nothing is in the new catalog yet.
        var recover = await RunStoppedAfterAsync("openat", Path.Combine(Blobs, kept[0] + ".sealed"), "recover", "--data-dir", DataDir);
        var said = await StartTheDaemonMeanwhileAsync(recover);

        var result = await recover.Run;
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.Stdout, Does.Contain($"lists the {Kept} submission(s) it lacked"));
        Assert.That(said, Has.One.Contains($"store: {DataDir} was in use by oniondrop recover, which let go after"));
        AssertKept(kept);
    }

    /// <summary>Many submissions, all but <see cref="Kept"/> acknowledged (so deleted): a catalog full of free pages.</summary>
    private async Task<string[]> FillAndDeleteAsync()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var ids = (await Submissions.CreateAsync(store, _key.PublicKey, 400, _ => 100)).Keys.Order().ToArray();
        store.Acknowledge(ids[Kept..], "alice");
        Assert.That(store.ListCommitted(), Has.Count.EqualTo(Kept));
        return ids[..Kept];
    }

    private void AssertKept(string[] kept)
    {
        using var store = SealedBlobStore.Open(DataDir);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(kept));
        Assert.That(Directory.GetFiles(DataDir, "catalog*").Select(Path.GetFileName), Has.None.Contains("backup").And.None.Contains("temp"));
    }

    private sealed record Stopped(Task<ProcessResult> Run, int Pid);

    /// <summary>`oniondrop ARGS` under strace, which stops it (SIGSTOP) right after its first of <paramref name="syscalls"/> on <paramref name="path"/>.</summary>
    private async Task<Stopped> RunStoppedAfterAsync(string syscalls, string path, params string[] args)
    {
        var trace = _temp.Combine("strace.txt");
        var run = ChildProcess.RunAsync("strace", ["-f", "-qq", "-o", trace, "-P", path, "-e", "trace=" + syscalls,
            "-e", $"inject={syscalls}:signal=STOP:when=1", "dotnet", Oniondrop.Dll, .. args], TimeSpan.FromMinutes(3));
        for (var waited = Stopwatch.StartNew(); ; await Task.Delay(50))
        {
            var stop = File.Exists(trace) ? File.ReadLines(trace).FirstOrDefault(l => l.EndsWith("--- stopped by SIGSTOP ---")) : null;
            if (stop is not null) return new Stopped(run, int.Parse(stop.Split(' ')[0]));
            Assert.That(run.IsCompleted, Is.False, () => $"it ended before {syscalls} on {path}: {run.Result}");
            Assert.That(waited.Elapsed, Is.LessThan(TimeSpan.FromSeconds(60)), $"never stopped at {syscalls} on {path}");
        }
    }

    /// <summary>
    /// Starts the daemon while <paramref name="held"/> holds the store, lets the command go on once the daemon waits for it,
    /// and returns the daemon's lines about the store once it serves (then stops it).
    /// </summary>
    private async Task<List<string>> StartTheDaemonMeanwhileAsync(Stopped held)
    {
        Assert.That(DataDirectoryLock.IsHeld(DataDir), "the command holds the store");
        var starting = DaemonProcess.StartAsync(DataDir, _key.PublicKey.ToString());
        try
        {
            for (var waited = Stopwatch.StartNew(); !DataDirectoryLock.IsWanted(DataDir); await Task.Delay(50))
            {
                Assert.That(starting.IsCompleted, Is.False, () => "the daemon did not wait for the store: " + starting.Exception);
                Assert.That(waited.Elapsed, Is.LessThan(TimeSpan.FromSeconds(60)), "the daemon never waited for the store");
            }
        }
        finally { PosixProcess.Signal(held.Pid, PosixProcess.SIGCONT); }

        await using var daemon = await starting;
        var said = daemon.Output.Split('\n').Where(l => l.Contains("store: ")).ToList();
        TestContext.Out.WriteLine(string.Join('\n', said));
        Assert.That(held.Run.IsCompleted || await Task.WhenAny(held.Run, Task.Delay(TimeSpan.FromSeconds(10))) == held.Run,
            "the command ended once the daemon had the store");
        Assert.That(await daemon.StopAsync(), Is.Zero, daemon.Output);
        return said;
    }

    private static async Task<string> InodeAsync(string path) => (await ChildProcess.RunAsync("stat", ["-c", "%i", path])).Stdout.Trim();
}
