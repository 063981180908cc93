using System.Diagnostics;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// The daemon started (by the operator, or by systemd restarting it) while a journalist's pull is served directly,
/// the daemon having been stopped. The pull used to hold daemon.lock to its end: the daemon waited 30 s for it, failed,
/// and was started again every 35 s or so until the pull ended, the sources' form down all that time. The drop box
/// comes first: the pull steps aside, its fetch says to run it again, and the rerun, relayed to the daemon, resumes.
/// Here the real `oniondrop pull --stdio` (sandboxed as under sshd) serves fetch through a relay that passes its first
/// N bytes and then holds the pipe (`head -c N`), so the pull is caught mid-session; once the daemon is up the relay
/// passes the rest on, as ssh would, and then the pull's end.
/// </summary>
public class DaemonStartDuringPullTests
{
    private const int Count = 100;
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");
    private string Received => _temp.Combine("received");
    private string Blobs => Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName);

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    private string Pull => $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as alice";

    /// <remarks>
    /// The relay stops in the middle of the 99th blob, after the server has recorded fetch's first 64 acknowledgements
    /// (as in <see cref="StalledFetchTests"/>). With 64 KiB blobs what the pull still has to send (half the 99th, the
    /// 100th) overflows the pipe (64 KiB): it is stuck writing a blob. With 16 KiB blobs it all fits: the pull has sent
    /// everything asked for and waits for the journalist's next request.
    /// </remarks>
    [TestCase(64 << 10)]
    [TestCase(16 << 10)]
    public async Task A_daemon_started_during_a_pull_served_directly_serves_at_once_and_the_rerun_resumes(int size)
    {
        IReadOnlyList<SubmissionRecord> listed;
        using (var store = SealedBlobStore.Open(DataDir))
        {
            await Submissions.CreateAsync(store, _key.PublicKey, Count, _ => size);
            listed = store.ListWaiting("alice");
        }
        var hashes = listed.ToDictionary(r => r.Id, r => r.Sha256Hex);
        long cut = PullTranscript.ToTheMiddleOfThe99thBlob(listed);
        var go = _temp.Combine("go");
        // head reads no byte past the cut; the group then keeps the pipe open, unread, until the test says go.
        var holding = $"sh -c 'echo $$ > {_temp.Combine("pull.pid")}; exec {Pull}' | {{ stdbuf -o0 head -c {cut}; until [ -e {go} ]; do sleep 0.1; done; exec cat; }}";
        var fetch = Oniondrop.RunAsync(["fetch", "-o", Received, "--via", holding], TimeSpan.FromMinutes(3));
        try
        {
            await StepAsideAndResumeAsync(fetch, go, hashes);
        }
        finally
        {
            File.WriteAllText(go, ""); // a failed test leaves no fetch waiting on the relay
            try { await fetch; } catch (TimeoutException) { }
        }
    }

    private async Task StepAsideAndResumeAsync(Task<ProcessResult> fetch, string go, Dictionary<string, string> hashes)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (Directory.Exists(Received) ? Directory.GetFiles(Received, "*.sealed").Length < 98 : true)
        {
            Assert.That(fetch.IsCompleted, Is.False, () => "fetch ended early: " + fetch.Result);
            Assert.That(DateTime.UtcNow, Is.LessThan(deadline), "fetch never got its first 98 blobs");
            await Task.Delay(100);
        }
        Assert.That(DataDirectoryLock.IsHeld(DataDir), "the pull, mid-session, holds the store");

        var clock = Stopwatch.StartNew();
        await using var daemon = await DaemonProcess.StartAsync(DataDir, _key.PublicKey.ToString());
        var serving = clock.Elapsed;
        TestContext.Out.WriteLine($"the daemon served its form {serving.TotalSeconds:0.0} s after its start");
        Assert.That(serving, Is.LessThan(TimeSpan.FromSeconds(20)), "the daemon waited for the pull to end");
        var said = daemon.Output.Split('\n').Where(l => l.Contains("store: ")).ToList();
        TestContext.Out.WriteLine(string.Join('\n', said));
        Assert.That(said, Has.One.Contains($"store: {DataDir} was in use by a journalist's pull served while the daemon was stopped, which let go after"), daemon.Output);

        // Ended, not merely quiet: the relay holds what it sent, and whatever the pull still had on its way is dropped.
        var pull = int.Parse(File.ReadAllText(_temp.Combine("pull.pid")));
        for (var waited = Stopwatch.StartNew(); PosixProcess.IsAlive(pull); await Task.Delay(50))
            Assert.That(waited.Elapsed, Is.LessThan(TimeSpan.FromSeconds(10)), "the pull stepped aside but did not end");

        File.WriteAllText(go, "");
        var first = await fetch;
        TestContext.Out.WriteLine(first);
        Assert.That(first.ExitCode, Is.EqualTo(3), first.ToString());
        Assert.That(first.Stderr, Does.Contain("oniondrop pull: the drop box's daemon started and takes the store over: this pull stopped; " +
                                               "nothing unacknowledged was deleted: run fetch again to resume"));
        Assert.That(first.Stderr, Does.Contain("oniondrop fetch: connection lost").And.EndWith("nothing unacknowledged was deleted: run fetch again to resume\n"));
        Assert.That(Directory.GetFiles(Received, "*.partial"), Is.Empty, "a blob cut off is not kept");
        var held = SealedFiles.HashesIn(Received);
        foreach (var (id, sha) in held) Assert.That(sha, Is.EqualTo(hashes[id]), id);
        var onServer = Directory.GetFiles(Blobs, "*.sealed").Select(p => Path.GetFileNameWithoutExtension(p)).ToHashSet();
        var deleted = hashes.Keys.Except(onServer).ToList();
        Assert.That(deleted, Has.Count.EqualTo(64), "the first acknowledgements reached the server before the daemon started");
        Assert.That(deleted, Is.SubsetOf(held.Keys), "the server deleted only blobs the journalist holds");
        Assert.That(held.Keys.Intersect(onServer), Is.Not.Empty, "some the journalist holds are still unacknowledged");

        var rerun = await Oniondrop.RunAsync(["fetch", "-o", Received, "--via", Pull]);
        Assert.That(rerun.ExitCode, Is.Zero, rerun.ToString());
        Assert.That(rerun.Stderr, Does.Contain($"{Count - held.Count} new submission(s)").And.Contain($"{held.Count - 64} already here"), rerun.ToString());
        Assert.That(SealedFiles.HashesIn(Received), Is.EquivalentTo(hashes), "every blob exactly once, intact");
        Assert.That(Directory.GetFiles(Received), Has.Length.EqualTo(Count), "nothing else");
        Assert.That(Directory.GetFiles(Blobs, "*.sealed"), Is.Empty, "each deleted once acknowledged, through the daemon");
        Assert.That(daemon.HasExited, Is.False, daemon.Output);
    }
}
