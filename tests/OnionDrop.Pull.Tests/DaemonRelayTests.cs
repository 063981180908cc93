using Microsoft.Extensions.Logging.Abstractions;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// While the daemon holds the store (here: this test process, with the daemon's PullSocketListener),
/// `oniondrop pull --stdio` must not open the catalog itself: it relays to DATA/pull.sock.
/// </summary>
public class DaemonRelayTests
{
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private string DataDir => _temp.Combine("data");

    [SetUp] public void SetUp() => (_temp, _key) = (new TempDirectory(), JournalistKey.Generate());
    [TearDown] public void TearDown() { _key.Dispose(); _temp.Dispose(); }

    [Test]
    public async Task Pull_relays_to_the_running_daemon_which_stays_the_only_writer()
    {
        using var store = SealedBlobStore.Open(DataDir);
        var ids = await Submissions.CreateAsync(store, _key.PublicKey, 20, n => 100 * n);
        var listener = new PullSocketListener(store, DataDir, NullLogger<PullSocketListener>.Instance);
        await listener.StartAsync(CancellationToken.None);
        try
        {
            await listener.Listening.WaitAsync(TimeSpan.FromSeconds(10));
            Assert.That(File.GetUnixFileMode(listener.SocketPath), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite), "only the daemon's user may connect (and is the only one served)");

            var received = _temp.Combine("received");
            var fetch = await Oniondrop.RunAsync(["fetch", "-o", received, "--via", $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as carol"]);

            Assert.That(fetch.ExitCode, Is.Zero, fetch.ToString());
            Assert.That(Directory.GetFiles(received).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()));
            Assert.That(store.ListCommitted(), Is.Empty, "acknowledged through the daemon's own store");
            Assert.That(DataDirectoryLock.IsHeld(DataDir), "this process still holds the lock");
        }
        finally
        {
            await listener.StopAsync(CancellationToken.None);
        }
        Assert.That(File.Exists(listener.SocketPath), Is.False, "the socket goes with the daemon");
    }

    [Test]
    public async Task Sessions_beyond_the_cap_are_told_busy_and_a_place_comes_free_when_one_ends()
    {
        using var store = SealedBlobStore.Open(DataDir);
        await Submissions.CreateAsync(store, _key.PublicKey, 2, n => 1000 + n);
        var listener = new PullSocketListener(store, DataDir, NullLogger<PullSocketListener>.Instance, maxSessions: 3);
        await listener.StartAsync(CancellationToken.None);
        var held = new List<System.Net.Sockets.Socket>();
        try
        {
            await listener.Listening.WaitAsync(TimeSpan.FromSeconds(10));
            for (var i = 0; i < 3; i++)
            {
                var (socket, first) = await OpenSessionAsync(listener.SocketPath);
                held.Add(socket);
                Assert.That(first, Is.EqualTo(PullProtocol.Greeting), $"session {i + 1} of 3");
            }

            // What a journalist sees: one clear line, and fetch's "run again" exit code; nothing touched.
            var received = _temp.Combine("received");
            var relay = $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as carol";
            var busy = await Oniondrop.RunAsync(["fetch", "-o", received, "--via", relay]);
            Assert.That(busy.ExitCode, Is.EqualTo(3), busy.ToString());
            Assert.That(busy.Stderr, Does.Contain("oniondrop fetch: the server refused: busy 3 pull sessions are running already: try again in a few minutes"), busy.ToString());
            Assert.That(store.ListCommitted(), Has.Count.EqualTo(2));

            held[0].Dispose(); // its session ends when the server sees the connection close
            string? again = null;
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (again != PullProtocol.Greeting && DateTime.UtcNow < deadline)
            {
                var (socket, first) = await OpenSessionAsync(listener.SocketPath);
                held.Add(socket);
                again = first;
                if (again != PullProtocol.Greeting) await Task.Delay(100);
            }
            Assert.That(again, Is.EqualTo(PullProtocol.Greeting), "the place that came free is taken again");
        }
        finally
        {
            held.ForEach(s => s.Dispose());
            await listener.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>A session on pull.sock as the relay opens one; returns the daemon's first line.</summary>
    private static async Task<(System.Net.Sockets.Socket, string?)> OpenSessionAsync(string socketPath)
    {
        var socket = await PullRelay.ConnectAsync(socketPath);
        var stream = new System.Net.Sockets.NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(PullProtocol.Line("AS alice"));
        using var reader = new StreamReader(stream, System.Text.Encoding.ASCII);
        return (socket, await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    private Task<ProcessResult> FetchWithOpenAsync(string dir, string keyFile) =>
        Oniondrop.RunAsync(["fetch", "-o", dir, "--open", "--key", keyFile, "--via", $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as dave"]);

    private string SavedKey()
    {
        var keyFile = _temp.Combine("journalist.key");
        _key.Save(keyFile);
        return keyFile;
    }

    [Test]
    public async Task Fetch_with_open_opens_each_blob_as_it_arrives_when_the_daemon_is_stopped()
    {
        Dictionary<string, int> ids;
        using (var store = SealedBlobStore.Open(DataDir)) ids = await Submissions.CreateAsync(store, _key.PublicKey, 5, n => 1000 + n);
        var keyFile = SavedKey();
        var dir = _temp.Combine("received");

        var fetch = await FetchWithOpenAsync(dir, keyFile);

        Assert.That(fetch.ExitCode, Is.Zero, fetch.ToString());
        Assert.That(fetch.Stderr, Does.Contain("5 new submission(s)").And.Contain("5 opened"));
        Assert.That(Directory.GetFiles(dir, "*.sealed"), Has.Length.EqualTo(5));
        var folders = Directory.GetDirectories(dir);
        Assert.That(folders, Has.Length.EqualTo(5));
        foreach (var folder in folders)
        {
            var n = int.Parse(File.ReadAllText(Path.Combine(folder, "message.txt"))["message number ".Length..]);
            Assert.That(File.ReadAllBytes(Path.Combine(folder, Submissions.FileName(n))), Is.EqualTo(Submissions.Content(n, 1000 + n)));
        }
        using (var store = SealedBlobStore.Open(DataDir)) Assert.That(store.ListCommitted(), Is.Empty);
    }

    /// <summary>
    /// A blob fetch --open cannot open (another key, a full disk) is kept and acknowledged: no later fetch offers it
    /// again, and the lines said only why it did not open, not how to open it once that is fixed.
    /// </summary>
    [Test]
    public async Task Fetch_with_open_keeps_what_it_cannot_open_and_says_how_to_open_it_later()
    {
        using (var store = SealedBlobStore.Open(DataDir)) await Submissions.CreateAsync(store, _key.PublicKey, 2, n => 100 + n);
        var otherKey = _temp.Combine("other.key");
        using (var other = JournalistKey.Generate()) other.Save(otherKey);
        var dir = _temp.Combine("received");

        var fetch = await FetchWithOpenAsync(dir, otherKey);

        Assert.That(fetch.ExitCode, Is.EqualTo(1), fetch.ToString());
        Assert.That(fetch.Stderr.Split('\n').Count(l => l.Contains(".sealed: not opened: ")), Is.EqualTo(2), fetch.Stderr);
        Assert.That(fetch.Stderr, Does.Contain($"the 2 sealed file(s) not opened are kept in {dir}").And.Contain($"oniondrop open --key FILE -o {dir} "));
        var kept = Directory.GetFiles(dir, "*.sealed");
        Assert.That(kept, Has.Length.EqualTo(2));

        var keyFile = SavedKey();
        var open = await Oniondrop.RunAsync(["open", "--key", keyFile, "-o", dir, .. kept]);
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        Assert.That(Directory.GetDirectories(dir), Has.Length.EqualTo(2), "the way the line gives opens them");
    }

    /// <summary>
    /// fetch --open killed after a blob's rename to ID.sealed but before it opened it (and so before its ACK): the
    /// next run finds ID.sealed already here and acknowledges it without a transfer. It used to acknowledge it
    /// without opening it too, so that submission was never opened by fetch --open, and no line said so.
    /// </summary>
    [Test]
    public async Task Fetch_with_open_opens_a_blob_an_interrupted_run_stored_but_did_not_open()
    {
        Dictionary<string, int> ids;
        using (var store = SealedBlobStore.Open(DataDir)) ids = await Submissions.CreateAsync(store, _key.PublicKey, 3, n => 1000 + n);
        var keyFile = SavedKey();
        var dir = _temp.Combine("received");
        Directory.CreateDirectory(dir);
        var leftover = ids.Keys.First();   // what the killed run left: the verified .sealed, no folder, no ACK
        File.Copy(Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName, leftover + ".sealed"), Path.Combine(dir, leftover + ".sealed"));

        var fetch = await FetchWithOpenAsync(dir, keyFile);

        Assert.That(fetch.ExitCode, Is.Zero, fetch.ToString());
        Assert.That(fetch.Stderr, Does.Contain("2 new submission(s)").And.Contain("1 already here").And.Contain("3 opened"));
        Assert.That(Directory.GetDirectories(dir).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Order()));
        var n = ids[leftover];
        Assert.That(File.ReadAllBytes(Path.Combine(dir, leftover, Submissions.FileName(n))), Is.EqualTo(Submissions.Content(n, 1000 + n)));

        // Run again: nothing left to fetch, nothing opened twice.
        var again = await FetchWithOpenAsync(dir, keyFile);
        Assert.That(again.ExitCode, Is.Zero, again.ToString());
        Assert.That(again.Stderr, Does.Contain("0 new submission(s)").And.Contain("0 opened"));
        Assert.That(Directory.GetDirectories(dir), Has.Length.EqualTo(3));
    }

    /// <summary>
    /// At a terminal, fetch rewrites a progress line in place. Its first report compared the clock with
    /// TimeSpan.MinValue, which overflowed: every fetch at a terminal failed at once, nothing fetched.
    /// </summary>
    [Test]
    public async Task Fetch_at_a_terminal_shows_its_progress_and_fetches_everything()
    {
        Dictionary<string, int> ids;
        using (var store = SealedBlobStore.Open(DataDir)) ids = await Submissions.CreateAsync(store, _key.PublicKey, 5, n => 1000 + n);
        var received = _temp.Combine("received");

        var fetch = await PseudoTerminal.RunOniondropAsync(["fetch", "-o", received, "--via", $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as frank"]);

        Assert.That(fetch.ExitCode, Is.Zero, fetch.ToString());
        Assert.That(Directory.GetFiles(received).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()));
        Assert.That(fetch.Stdout, Does.Contain("\r5/5 submissions  "), "the last progress line");
        var summary = fetch.Stdout.IndexOf("oniondrop fetch: 5 new submission(s)", StringComparison.Ordinal);
        Assert.That(summary, Is.GreaterThan(0), fetch.ToString());
        Assert.That(fetch.Stdout[..summary], Does.EndWith("\r\x1b[K"), "the progress line is cleared before the summary");
        using (var store = SealedBlobStore.Open(DataDir)) Assert.That(store.ListCommitted(), Is.Empty);
    }

    /// <summary>
    /// Two journalists fetching while the daemon is stopped: the first pull holds the store (daemon.lock), and the
    /// second took that for a running daemon, tried its pull.sock for 5 s and failed with "the daemon holds DATA but
    /// pull.sock does not answer". It now waits for the first to end, says so, and serves.
    /// </summary>
    [Test]
    public async Task A_pull_while_another_is_served_with_the_daemon_stopped_waits_for_it_and_then_serves()
    {
        Dictionary<string, int> ids;
        var first = SealedBlobStore.Open(DataDir); // what a pull serving directly holds
        try
        {
            ids = await Submissions.CreateAsync(first, _key.PublicKey, 10, n => 1000 + n);
            var received = _temp.Combine("received");
            var fetch = Oniondrop.RunAsync(["fetch", "-o", received, "--via", $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as erin"], TimeSpan.FromMinutes(2));
            // Longer than the 5 s a starting daemon's pull.sock is given.
            await Task.WhenAny(fetch, Task.Delay(TimeSpan.FromSeconds(8)));
            Assert.That(fetch.IsCompleted, Is.False, fetch.IsCompleted ? fetch.Result.ToString() : "");
            first.Dispose();

            var result = await fetch;
            Assert.That(result.ExitCode, Is.Zero, result.ToString());
            Assert.That(result.Stderr, Does.Contain("another pull is being served while the daemon is stopped; waiting for it to end"));
            Assert.That(Directory.GetFiles(received).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()));
        }
        finally { first.Dispose(); }
        using var store = SealedBlobStore.Open(DataDir);
        Assert.That(store.ListCommitted(), Is.Empty);
    }

    /// <summary>
    /// The same with a pull.sock left behind by a daemon that was killed: the second pull blamed the daemon again ("the
    /// daemon holds DATA but pull.sock does not answer") and ended. The pull that takes the store, and with it the
    /// socket's name, removes the dead socket.
    /// </summary>
    [Test]
    public async Task A_pull_while_another_is_served_beside_a_dead_daemons_pull_socket_waits_for_it_and_then_serves()
    {
        Dictionary<string, int> ids;
        using (var store = SealedBlobStore.Open(DataDir)) ids = await Submissions.CreateAsync(store, _key.PublicKey, 10, n => 1000 + n);
        await using (var daemon = await DaemonProcess.StartAsync(DataDir, _key.PublicKey.ToString())) await daemon.KillAsync();
        Assert.That(File.Exists(Path.Combine(DataDir, PullSocketListener.FileName)), "the killed daemon's pull.sock is left");

        // The first journalist's pull, served directly, waiting for their next request.
        using var first = System.Diagnostics.Process.Start(Oniondrop.StartInfo("pull", "--stdio", "--data-dir", DataDir, "--as", "dora"))!;
        try
        {
            Assert.That(await first.StandardOutput.ReadLineAsync(), Is.EqualTo(PullProtocol.Greeting));
            var received = _temp.Combine("received");
            var fetch = Oniondrop.RunAsync(["fetch", "-o", received, "--via", $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as erin"], TimeSpan.FromMinutes(2));
            await Task.WhenAny(fetch, Task.Delay(TimeSpan.FromSeconds(8)));
            Assert.That(fetch.IsCompleted, Is.False, fetch.IsCompleted ? fetch.Result.ToString() : "");
            first.StandardInput.Close(); // the first journalist is done
            Assert.That(first.WaitForExit(TimeSpan.FromSeconds(30)), Is.True);

            var result = await fetch;
            Assert.That(result.ExitCode, Is.Zero, result.ToString());
            Assert.That(result.Stderr, Does.Contain("another pull is being served while the daemon is stopped; waiting for it to end"));
            Assert.That(Directory.GetFiles(received).Select(Path.GetFileName).Order(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()));
        }
        finally { if (!first.HasExited) first.Kill(); }
    }

    [Test]
    public async Task Pull_without_stdio_or_with_a_bad_name_says_why()
    {
        var noStdio = await Oniondrop.RunAsync(["pull", "--data-dir", DataDir]);
        Assert.That(noStdio.ExitCode, Is.Not.Zero);
        Assert.That(noStdio.Stderr.Trim(), Does.StartWith("oniondrop pull: --stdio is required"));

        var badName = await Oniondrop.RunAsync(["pull", "--stdio", "--data-dir", DataDir, "--as", "../x"]);
        Assert.That(badName.ExitCode, Is.Not.Zero);
        Assert.That(badName.Stderr.Trim(), Does.StartWith("oniondrop pull: --as '../x'"));

        var fetchNothing = await Oniondrop.RunAsync(["fetch"]);
        Assert.That(fetchNothing.ExitCode, Is.Not.Zero);
        Assert.That(fetchNothing.Stderr.Trim(), Does.StartWith("oniondrop fetch: give the server"));
    }

    [Test]
    public async Task Fetch_from_a_server_where_pull_never_started_says_so_and_does_not_suggest_resuming()
    {
        // What a wrong command= path in authorized_keys looks like from here: the shell's "not found", exit 127.
        var notFound = await Oniondrop.RunAsync(["fetch", "-o", _temp.Combine("in"), "--via", "sh -c 'echo \"sh: 1: oniondrop: not found\" >&2; exit 127'"]);
        Assert.That(notFound.ExitCode, Is.EqualTo(3), notFound.ToString());
        Assert.That(notFound.Stderr, Does.Contain("did not start oniondrop pull").And.Contain("127").And.Not.Contain("resume"));
        Assert.That(Directory.Exists(_temp.Combine("in")), Is.False, "fetch left behind the empty folder it made");

        Directory.CreateDirectory(_temp.Combine("kept"));
        var existing = await Oniondrop.RunAsync(["fetch", "-o", _temp.Combine("kept"), "--via", "exit 127"]);
        Assert.That(existing.ExitCode, Is.EqualTo(3), existing.ToString());
        Assert.That(Directory.Exists(_temp.Combine("kept")), Is.True, "fetch removed a folder it did not make");

        var other = await Oniondrop.RunAsync(["fetch", "-o", _temp.Combine("in"), "--via", "false"]);
        Assert.That(other.Stderr, Does.Contain("ended before the pull began").And.Not.Contain("resume"), other.ToString());
    }
    [Test]
    public async Task A_second_fetch_into_the_same_folder_stops_before_connecting_anywhere()
    {
        var inbox = _temp.Combine("inbox");
        Directory.CreateDirectory(inbox);
        var ran = _temp.Combine("transport-ran");
        using (var first = Posix.TryLockDirectory(inbox))   // what a running fetch holds
        {
            var second = await Oniondrop.RunAsync(["fetch", "-o", inbox, "--via", $"touch {ran}; exit 1"]);
            Assert.That(second.ExitCode, Is.EqualTo(3), second.ToString());
            Assert.That(second.Stderr, Does.Contain("another oniondrop fetch is writing into"));
        }
        Assert.That(File.Exists(ran), Is.False, "no ssh (here, the --via command) was started");
    }
}
