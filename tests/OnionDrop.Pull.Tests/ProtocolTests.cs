using System.IO.Pipelines;
using System.Text;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>PullServer and PullClient talking over in-memory pipes: the protocol without ssh.</summary>
public class ProtocolTests
{
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");
    private string Received => _temp.Combine("received");

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    /// <param name="beforeFirstGet">runs once, after the LIST's answer reached the client and before its first GET reaches the server</param>
    private static async Task<FetchResult> FetchAsync(ISealedBlobStore store, string journalist, FetchOptions options, Action? beforeFirstGet = null)
    {
        var toServer = new Pipe();
        var toClient = new Pipe();
        var server = Task.Run(async () =>
        {
            await new PullServer(store, journalist).RunAsync(toServer.Reader.AsStream(), toClient.Writer.AsStream());
            await toClient.Writer.CompleteAsync();
        });
        var requests = beforeFirstGet is null ? toServer.Writer.AsStream() : new WatchedWrites(toServer.Writer.AsStream(), written =>
        {
            if (beforeFirstGet is null || !Encoding.ASCII.GetString(written).Contains("GET ", StringComparison.Ordinal)) return;
            beforeFirstGet();
            beforeFirstGet = null;
        });
        try { return await PullClient.FetchAsync(toClient.Reader.AsStream(), requests, options); }
        finally
        {
            await toServer.Writer.CompleteAsync();
            await server;
        }
    }

    [Test]
    public async Task Fetch_receives_every_blob_verified_and_the_server_deletes_only_what_was_acknowledged()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 25, n => n * 3001);
        var hashes = store.ListCommitted().ToDictionary(r => r.Id, r => r.Sha256Hex);

        var result = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received, Window = 4, AckBatchCount = 7 });

        Assert.That(result.Problems, Is.Empty);
        Assert.That((result.Received, result.Acknowledged, result.Waiting), Is.EqualTo((25, 25, 25)));
        Assert.That(Directory.GetFiles(Received).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()));
        foreach (var (id, sha) in hashes)
            Assert.That(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(Path.Combine(Received, id + ".sealed")))), Is.EqualTo(sha));
        Assert.That(store.ListCommitted(), Is.Empty, "acknowledged, and the default policy deletes at once");
        Assert.That(Directory.GetFiles(_temp.Combine("data", "blobs")), Is.Empty);
    }

    [Test]
    public async Task A_second_fetch_into_the_same_folder_is_refused_and_touches_nothing_of_the_first()
    {
        // Found by a chaos run: the second fetch deleted the first's ID.partial as a leftover, and the first then
        // renamed the second's half-written file into place and acknowledged it; the server deleted the blob.
        using var store = SealedBlobStore.Open(DataDir);
        await Submissions.CreateAsync(store, _key.PublicKey, 2, _ => 4000);
        Directory.CreateDirectory(Received);
        var othersPartial = Path.Combine(Received, SubmissionId.New() + ".partial");
        File.WriteAllText(othersPartial, "the first fetch's blob, on its way");

        using (var first = Posix.TryLockDirectory(Received))   // what the first fetch holds while it runs
        {
            Assert.That(first, Is.Not.Null);
            var busy = await Assert.ThrowsAsync<FetchDirectoryBusyException>(() => FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received }));
            Assert.That(busy!.Message, Does.Contain("another oniondrop fetch is writing into"));
            Assert.That(File.Exists(othersPartial), Is.True, "the other fetch's file is left alone");
            Assert.That(store.ListCommitted(), Has.Count.EqualTo(2), "nothing acknowledged");
        }

        var result = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received });
        Assert.That(result.Received, Is.EqualTo(2));
        Assert.That(File.Exists(othersPartial), Is.False, "once nobody writes there, a .partial is a leftover");
        Assert.That(Directory.GetFiles(Received), Has.Length.EqualTo(2), "and no lock file is left among the journalist's files");
    }

    [Test]
    public async Task A_blob_whose_bytes_changed_on_the_server_is_refused_and_left_there()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 3, _ => 5000);
        var bad = ids.Keys.First();
        using (var f = new FileStream(_temp.Combine("data", "blobs", bad + ".sealed"), FileMode.Open)) { f.Position = 100; f.WriteByte(0x55); f.Position = 101; f.WriteByte(0xAA); }

        var result = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received });

        Assert.That(result.Problems, Has.Count.EqualTo(1));
        Assert.That(result.Problems[0], Does.StartWith(bad).And.Contain("SHA-256").And.Contain("not acknowledged"));
        Assert.That(result.Acknowledged, Is.EqualTo(2));
        Assert.That(File.Exists(Path.Combine(Received, bad + ".sealed")), Is.False);
        Assert.That(Directory.GetFiles(Received, "*.partial"), Is.Empty);
        Assert.That(store.ListCommitted().Select(r => r.Id), Is.EqualTo(new[] { bad }));
    }

    [Test]
    public async Task A_blob_a_colleague_completes_between_list_and_get_is_counted_as_gone_not_as_a_failure()
    {
        // DeleteAfter=First (the default): bob's fetch completes a blob alice has just been listed, and the server
        // deletes it; her GET then finds it gone. Nothing of hers failed: she is told, and fetch exits 0.
        using var store = SealedBlobStore.Open(DataDir);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 3, _ => 3000);
        var taken = ids.Keys.First();

        var result = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received }, beforeFirstGet: () => store.Acknowledge(taken, "bob"));

        Assert.That(result.Problems, Is.Empty);
        Assert.That((result.Waiting, result.Received, result.GoneMeanwhile, result.Acknowledged), Is.EqualTo((3, 2, 1, 2)));
        Assert.That(Directory.GetFiles(Received).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Skip(1).Select(id => id + ".sealed").Order()));
        Assert.That(store.ListCommitted(), Is.Empty);
    }

    [Test]
    public async Task Per_journalist_acknowledgements_with_quorum_all()
    {
        using var store = SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { DeleteAfter = AcknowledgementQuorum.All, Journalists = ["alice", "bob"] });
        await Submissions.CreateAsync(store, _key.PublicKey, 4, _ => 1000);

        var alice = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = _temp.Combine("alice") });
        Assert.That(alice.Received, Is.EqualTo(4));
        Assert.That(store.ListCommitted(), Has.Count.EqualTo(4), "bob has not got them yet");
        Assert.That((await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = _temp.Combine("alice") })).Waiting, Is.Zero);

        var bob = await FetchAsync(store, "bob", new FetchOptions { OutputDirectory = _temp.Combine("bob") });
        Assert.That(bob.Received, Is.EqualTo(4));
        Assert.That(store.ListCommitted(), Is.Empty);
    }

    [Test]
    public async Task A_blob_already_in_the_folder_is_acknowledged_without_being_sent_again()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 3, _ => 2000);
        var held = ids.Keys.First();
        Directory.CreateDirectory(Received);
        using (var source = store.OpenSealed(held)) using (var copy = File.Create(Path.Combine(Received, held + ".sealed"))) source.CopyTo(copy);
        File.WriteAllText(Path.Combine(Received, ids.Keys.Last() + ".partial"), "left by a cut fetch");

        var result = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received });

        Assert.That((result.Received, result.AlreadyHeld, result.Acknowledged), Is.EqualTo((2, 1, 3)));
        Assert.That(result.BytesReceived, Is.EqualTo(ids.Keys.Skip(1).Sum(id => new FileInfo(Path.Combine(Received, id + ".sealed")).Length)), "only the two missing ones travelled");
        Assert.That(Directory.GetFiles(Received).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()));
    }

    [Test]
    public async Task Acknowledgements_the_full_disk_cannot_record_are_refused_as_the_servers_error_and_retried_later()
    {
        // Found by a chaos run: the store's ENOSPC was taken for the peer going away, and the journalist was told
        // "connection lost" while the operator's log said nothing.
        await using var disk = await SmallTmpfs.MountAsync(16);
        var data = disk.Combine("data");
        using var store = SealedBlobStore.Open(data);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 3, _ => 4000);
        SmallTmpfs.Fill(disk.Combine("filler"));

        var full = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received });
        Assert.That(full.Received, Is.EqualTo(3), "the blobs still travel");
        Assert.That(full.Acknowledged, Is.Zero);
        Assert.That(full.Problems, Has.Count.EqualTo(3).And.All.Contain("server-error").And.All.Contain("not recorded"));

        File.Delete(disk.Combine("filler"));
        var later = await FetchAsync(store, "alice", new FetchOptions { OutputDirectory = Received });
        Assert.That((later.AlreadyHeld, later.Acknowledged, later.Problems.Count), Is.EqualTo((3, 3, 0)), string.Join("\n", later.Problems));
        Assert.That(store.ListCommitted(), Is.Empty, "recorded once there was room, and deleted");
        Assert.That(Directory.GetFiles(Received, "*.sealed").Select(Path.GetFileNameWithoutExtension), Is.EquivalentTo(ids.Keys));
    }

    [Test]
    public async Task A_peer_that_goes_silent_is_hung_up_on_after_the_idle_timeout()
    {
        // Served while the daemon is stopped, a pull holds the store's lock: a frozen session must not keep the
        // daemon from starting for ever (found by a chaos run).
        using var store = SealedBlobStore.Open(DataDir);
        var silent = new Pipe();   // connected, sends one request, then nothing
        await silent.Writer.WriteAsync(Encoding.ASCII.GetBytes("LIST\n"));
        var output = new MemoryStream();
        var served = new PullServer(store, "alice", idleTimeout: TimeSpan.FromMilliseconds(300)).RunAsync(silent.Reader.AsStream(), output);
        Assert.That(await Task.WhenAny(served, Task.Delay(TimeSpan.FromSeconds(20))), Is.SameAs(served), "the server hung up");
        await served; // and ended normally
        var lines = Encoding.ASCII.GetString(output.ToArray()).Split('\n');
        Assert.That(lines[1], Is.EqualTo("WAITING 0 0"), "the request before the silence was answered");
        Assert.That(lines[^2], Does.StartWith("ERROR idle "));
    }

    [Test]
    public async Task A_peer_that_stops_reading_is_hung_up_on_after_the_idle_timeout()
    {
        // Its requests all sent, the peer reads nothing more: the blob's writes block (found in a re-check).
        using var store = SealedBlobStore.Open(DataDir);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 1, _ => 3_000_000);
        var input = new Pipe();
        await input.Writer.WriteAsync(Encoding.ASCII.GetBytes($"LIST\nGET {ids.Keys.Single()}\n"));
        var unread = new Pipe(new PipeOptions(pauseWriterThreshold: 64 * 1024, resumeWriterThreshold: 32 * 1024));
        var served = new PullServer(store, "alice", idleTimeout: TimeSpan.FromMilliseconds(500)).RunAsync(input.Reader.AsStream(), unread.Writer.AsStream());
        Assert.That(await Task.WhenAny(served, Task.Delay(TimeSpan.FromSeconds(20))), Is.SameAs(served), "the server hung up");
        await served; // and ended normally
        Assert.That(store.ListCommitted(), Has.Count.EqualTo(1), "nothing acknowledged, nothing deleted");
    }

    [TestCase("LIST\nACK 0000-0000-0000-0000-0000\nACK 0000")]   // a burst of acknowledgements, its last line cut
    [TestCase("LIST\nLI")]                                      // a request cut mid-line
    public async Task A_peer_that_goes_silent_mid_line_is_hung_up_on_too(string sent)
    {
        using var store = SealedBlobStore.Open(DataDir);
        var input = new Pipe();
        await input.Writer.WriteAsync(Encoding.ASCII.GetBytes(sent));
        var output = new MemoryStream();
        var served = new PullServer(store, "alice", idleTimeout: TimeSpan.FromMilliseconds(300)).RunAsync(input.Reader.AsStream(), output);
        Assert.That(await Task.WhenAny(served, Task.Delay(TimeSpan.FromSeconds(20))), Is.SameAs(served), "the server hung up");
        await served;
        Assert.That(Encoding.ASCII.GetString(output.ToArray()), Does.Contain("ERROR idle "));
    }

    [Test]
    public async Task The_server_answers_nonsense_with_a_clear_error_and_hangs_up()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var input = new MemoryStream(Encoding.ASCII.GetBytes("GET ../../etc/passwd\nGET 0000-0000-0000-0000-0000\nACK 0000-0000-0000-0000-0000\nrm -rf /\nLIST\n"));
        var output = new MemoryStream();
        await new PullServer(store, "alice").RunAsync(input, output);
        Assert.That(Encoding.ASCII.GetString(output.ToArray()).Split('\n'), Is.EqualTo(new[]
        {
            PullProtocol.Greeting,
            "ERROR bad-id ../../etc/passwd",
            "ERROR not-found 0000-0000-0000-0000-0000",
            "ERROR not-found 0000-0000-0000-0000-0000",
            "ERROR unknown-command rm -rf /",
            "",
        }));
    }

    [Test]
    public void The_forced_command_accepts_only_what_fetch_sends()
    {
        Assert.That(ForcedCommand.Refusal(null), Is.Null);
        Assert.That(ForcedCommand.Refusal(""), Is.Null);
        Assert.That(ForcedCommand.Refusal("oniondrop pull --stdio"), Is.Null);
        Assert.That(ForcedCommand.Refusal("oniondrop  pull   --stdio "), Is.Null);
        foreach (var other in new[] { "bash", "sh -i", "oniondrop pull --stdio --data-dir /", "scp -f /etc/shadow", "internal-sftp", "oniondrop pull --stdio; sh" })
            Assert.That(ForcedCommand.Refusal(other), Does.Contain("may only pull").And.Contain("refused"), other);
    }
}
