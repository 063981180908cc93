using System.Diagnostics;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// `oniondrop fetch` from a server that keeps the connection open and stops sending: a hung ProxyCommand, torsocks or
/// Tor circuit. Here the real `oniondrop pull --stdio` serves, through a relay that passes its first N bytes and then
/// nothing, without closing (`head -c N`, then a `sleep` that holds the pipe open).
/// </summary>
public class StalledFetchTests
{
    private const int Count = 100;
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");
    private string Received => _temp.Combine("received");

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    private string Pull => $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as alice";

    [Test]
    public async Task A_server_that_stops_sending_mid_blob_is_given_up_after_the_idle_timeout_and_the_rerun_resumes()
    {
        IReadOnlyList<SubmissionRecord> listed;
        using (var store = SealedBlobStore.Open(DataDir))
        {
            await Submissions.CreateAsync(store, _key.PublicKey, Count, _ => 16 << 10);
            listed = store.ListWaiting("alice");
        }
        var hashes = listed.ToDictionary(r => r.Id, r => r.Sha256Hex);

        // The relay stops in the middle of the 99th blob, so the server has deleted 64 blobs that fetch holds, and fetch
        // waits for bytes that never come.
        long cut = PullTranscript.ToTheMiddleOfThe99thBlob(listed);
        var relayPid = _temp.Combine("relay.pid");
        // stdbuf -o0: head writes through stdio, which would hold the greeting back until 4 KiB had come.
        // Past the cut nothing more reaches fetch, and the shell (then its sleep) keeps fetch's end of the pipe open.
        var stalling = $"echo $$ > {relayPid}; {Pull} | stdbuf -o0 head -c {cut}; exec sleep 600";

        var clock = Stopwatch.StartNew();
        var fetch = await Oniondrop.RunAsync(["fetch", "-o", Received, "--idle-timeout", "2", "--via", stalling], TimeSpan.FromSeconds(90));
        clock.Stop();
        TestContext.Out.WriteLine($"gave up after {clock.Elapsed.TotalSeconds:0.0} s\n{fetch}");

        Assert.That(fetch.ExitCode, Is.EqualTo(3), fetch.ToString());
        Assert.That(fetch.Stderr.Trim(), Is.EqualTo($"oniondrop fetch: the server sent nothing for 2 s (--idle-timeout) after 98 of {Count} submission(s): " +
            "the connection stalled; nothing unacknowledged was deleted: run fetch again to resume, with a larger --idle-timeout if the link is only slow"));
        Assert.That(clock.Elapsed, Is.GreaterThan(TimeSpan.FromSeconds(2)).And.LessThan(TimeSpan.FromSeconds(60)));
        Assert.That(Directory.GetFiles(Received, "*.partial"), Is.Empty, "the 99th blob's partial file is gone");
        var held = Directory.GetFiles(Received).ToDictionary(p => Path.GetFileNameWithoutExtension(p), SealedFiles.Sha256Of);
        Assert.That(held.Keys, Is.EquivalentTo(listed.Take(98).Select(r => r.Id)), "every blob received whole, nothing else");
        foreach (var (id, sha) in held) Assert.That(sha, Is.EqualTo(hashes[id]), id);
        using (var store = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { LockWait = TimeSpan.FromSeconds(10) })) // once the pull is gone
        {
            var deleted = hashes.Keys.Except(store.ListCommitted().Select(r => r.Id)).ToList();
            Assert.That(deleted, Has.Count.EqualTo(64), "the first acknowledgements reached the server before the stall");
            Assert.That(deleted, Is.SubsetOf(held.Keys), "the server deleted only blobs the journalist holds");
        }
        Assert.That(PosixProcess.IsAlive(int.Parse(File.ReadAllText(relayPid))), Is.False, "the stalled relay was ended with fetch");

        var rerun = await Oniondrop.RunAsync(["fetch", "-o", Received, "--via", Pull], TimeSpan.FromSeconds(90));
        Assert.That(rerun.ExitCode, Is.Zero, rerun.ToString());
        Assert.That(rerun.Stderr, Does.Contain("2 new submission(s)").And.Contain("34 already here"));
        Assert.That(Directory.GetFiles(Received).Select(Path.GetFileName), Is.EquivalentTo(listed.Select(r => r.Id + ".sealed")), "every blob exactly once");
        foreach (var (id, sha) in hashes) Assert.That(SealedFiles.Sha256Of(Path.Combine(Received, id + ".sealed")), Is.EqualTo(sha), id);
        using (var store = SealedBlobStore.Open(DataDir)) Assert.That(store.ListCommitted(), Is.Empty);
    }
}
