using Microsoft.Extensions.Logging.Abstractions;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// `oniondrop compact`: the operator's way to give deleted entries' space back now. Compacts directly when the
/// daemon is stopped; asks the daemon (the catalog's only writer) over pull.sock when it runs.
/// </summary>
public class CompactTests
{
    private const int Kept = 5;
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");
    private string Catalog => Path.Combine(DataDir, SealedBlobStore.CatalogFileName);

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    /// <summary>Many submissions, all but <see cref="Kept"/> acknowledged (so deleted): a catalog full of free pages.</summary>
    private async Task<string[]> FillAndDeleteAsync(SealedBlobStore store)
    {
        var ids = (await Submissions.CreateAsync(store, _key.PublicKey, 400, _ => 100)).Keys.Order().ToArray();
        var gone = store.Acknowledge(ids[Kept..], "alice");
        Assert.That(gone, Has.All.Not.Null);
        Assert.That(store.ListCommitted(), Has.Count.EqualTo(Kept), "the default policy deletes at the first acknowledgement");
        return ids[..Kept];
    }

    [Test]
    public async Task With_the_daemon_stopped_compact_shrinks_the_catalog_and_keeps_what_waits()
    {
        string[] kept;
        using (var store = SealedBlobStore.Open(DataDir)) kept = await FillAndDeleteAsync(store);
        var before = new FileInfo(Catalog).Length;

        var compact = await Oniondrop.RunAsync(["compact", "--data-dir", DataDir]);

        Assert.That(compact.ExitCode, Is.Zero, compact.ToString());
        Assert.That(compact.Stdout, Does.Contain("compacted here (the daemon is not running)"));
        AssertReportsShrinking(compact.Stdout);
        Assert.That(new FileInfo(Catalog).Length, Is.LessThan(before), compact.ToString());
        using (var store = SealedBlobStore.Open(DataDir))
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(kept));
    }

    [Test]
    public async Task With_the_daemon_running_compact_asks_it_and_the_store_goes_on()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var kept = await FillAndDeleteAsync(store);
        var listener = new PullSocketListener(store, DataDir, NullLogger<PullSocketListener>.Instance);
        await listener.StartAsync(CancellationToken.None);
        try
        {
            await listener.Listening.WaitAsync(TimeSpan.FromSeconds(10));
            var before = new FileInfo(Catalog).Length;

            var compact = await Oniondrop.RunAsync(["compact", "--data-dir", DataDir]);

            Assert.That(compact.ExitCode, Is.Zero, compact.ToString());
            Assert.That(compact.Stdout, Does.Contain("compacted by the running daemon"));
            AssertReportsShrinking(compact.Stdout);
            Assert.That(new FileInfo(Catalog).Length, Is.LessThan(before));
            Assert.That(DataDirectoryLock.IsHeld(DataDir), "the daemon kept the store: compact never opened it");
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(kept));
            await Submissions.CreateAsync(store, _key.PublicKey, 1, _ => 100, first: 1000);
            Assert.That(store.ListCommitted(), Has.Count.EqualTo(Kept + 1), "uploads still commit after the rebuild");
        }
        finally
        {
            await listener.StopAsync(CancellationToken.None);
        }
    }

    [Test]
    public async Task Recover_makes_a_new_catalog_from_the_blobs_when_catalog_db_is_lost()
    {
        string[] kept;
        using (var store = SealedBlobStore.Open(DataDir)) kept = await FillAndDeleteAsync(store);
        File.Delete(Catalog);

        var compact = await Oniondrop.RunAsync(["compact", "--data-dir", DataDir]);
        Assert.That(compact.ExitCode, Is.Not.Zero, "compact does not touch a data directory without its catalog");

        var recover = await Oniondrop.RunAsync(["recover", "--data-dir", DataDir]);
        Assert.That(recover.ExitCode, Is.Zero, recover.ToString());
        Assert.That(recover.Stdout, Does.Contain($"lists the {kept.Length} submission(s) it lacked"));
        using (var store = SealedBlobStore.Open(DataDir))
            Assert.That(store.ListCommitted().Select(r => r.Id), Is.EquivalentTo(kept));

        var again = await Oniondrop.RunAsync(["recover", "--data-dir", DataDir]);
        Assert.That(again.ExitCode, Is.Zero, again.ToString());
        Assert.That(again.Stdout, Does.Contain("nothing to recover"));
    }

    [Test]
    public async Task With_the_daemon_stopped_only_the_data_directorys_owner_may_compact()
    {
        Assume.That(PeerCredentials.OwnUid, Is.Zero, "needs root, to give the data directory to another uid");
        using (var store = SealedBlobStore.Open(DataDir)) await FillAndDeleteAsync(store);
        var chown = await ChildProcess.RunAsync("chown", ["65534", DataDir]);
        Assert.That(chown.ExitCode, Is.Zero, chown.ToString());
        var before = new FileInfo(Catalog).Length;

        var compact = await Oniondrop.RunAsync(["compact", "--data-dir", DataDir]);

        Assert.That(compact.ExitCode, Is.EqualTo(1), compact.ToString());
        Assert.That(compact.Stderr.Trim(), Does.StartWith($"oniondrop compact: the daemon is not running and {DataDir} belongs to uid 65534: run this as that user"));
        Assert.That(new FileInfo(Catalog).Length, Is.EqualTo(before), "nothing rebuilt");
    }

    /// <summary>
    /// Root runs `sudo oniondrop compact` while the daemon runs, and prints the daemon's answer: the daemon's user (a
    /// daemon compromised inside its sandbox) must not reach root's terminal with escape sequences through it (retitle
    /// the window, write the clipboard, clear the screen, forge a line), as status.json cannot through `status`.
    /// </summary>
    [TestCase("ERROR server-error ")]
    [TestCase("NOT-AN-ANSWER ")]
    public async Task The_daemons_answer_to_compact_reaches_the_terminal_without_control_characters(string start)
    {
        using (SealedBlobStore.Open(DataDir)) { }
        using var held = DataDirectoryLock.TryAcquire(DataDir)!; // the "daemon" holds the store
        var socketPath = Path.Combine(DataDir, PullSocketListener.FileName);
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(socketPath));
        listener.Listen(1);
        var answered = Task.Run(async () =>
        {
            using var connection = await listener.AcceptAsync();
            await connection.ReceiveAsync(new byte[64]); // "COMPACT"
            await connection.SendAsync(System.Text.Encoding.ASCII.GetBytes(start + "\u001b]0;owned\u0007\u001b[2J\u001b]52;c;ZWNobyBoaQ==\u0007\rforged\n"));
            connection.Shutdown(System.Net.Sockets.SocketShutdown.Send);
        });

        var compact = await Oniondrop.RunAsync(["compact", "--data-dir", DataDir]);
        await answered.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.That(compact.ExitCode, Is.EqualTo(1), compact.ToString());
        Assert.That(compact.Stderr, Does.Contain("owned"), "the answer is still shown");
        Assert.That(compact.Stderr.TrimEnd('\n').Where(c => char.IsControl(c) && c != '\n'), Is.Empty, compact.ToString());
    }

    /// <summary>
    /// The daemon stopped and a journalist's pull served directly (it holds daemon.lock, and there is no pull.sock):
    /// compact said "the daemon holds DIR but pull.sock does not answer: Cannot assign requested address", sending the
    /// operator after a daemon that was not running.
    /// </summary>
    [Test]
    public async Task During_a_pull_served_while_the_daemon_is_stopped_compact_says_so()
    {
        using var pull = SealedBlobStore.Open(DataDir); // as `oniondrop pull --stdio` holds it while the daemon is stopped

        var compact = await Oniondrop.RunAsync(["compact", "--data-dir", DataDir]);

        Assert.That(compact.ExitCode, Is.EqualTo(1), compact.ToString());
        Assert.That(compact.Stderr.Trim(), Is.EqualTo($"oniondrop compact: {DataDir} is in use by another oniondrop process, and no daemon listens on " +
            "pull.sock: a journalist's pull served while the daemon is stopped (or another compact, or the daemon starting or stopping); run compact again once it ends"));
    }

    /// <summary>The figures printed count catalog.db and its log together: what was given back, not catalog.db growing as the log empties into it.</summary>
    private static void AssertReportsShrinking(string stdout)
    {
        var m = System.Text.RegularExpressions.Regex.Match(stdout, @"and its log: ([\d,]+) -> ([\d,]+) bytes");
        Assert.That(m.Success, stdout);
        Assert.That(long.Parse(m.Groups[2].Value.Replace(",", "")), Is.LessThan(long.Parse(m.Groups[1].Value.Replace(",", ""))), stdout);
    }
}
