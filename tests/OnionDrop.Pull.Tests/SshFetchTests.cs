using System.Diagnostics;
using System.Security.Cryptography;
using OnionDrop.Sealing;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Pull.Tests;

/// <summary>
/// `oniondrop fetch` through a real sshd on 127.0.0.1 whose authorized_keys line forces
/// `oniondrop pull --stdio` (the built CLI), as a journalist would use it.
/// </summary>
[Category("EndToEnd")]
public class SshFetchTests
{
    private TempDirectory _temp = null!;
    private JournalistKey _key = null!;
    private LoopbackSshd _sshd = null!;
    private string DataDir => _temp.Combine("data");
    private string Received => _temp.Combine("received");
    private string KeyFile => _temp.Combine("journalist.key");

    [SetUp]
    public async Task SetUp()
    {
        _temp = new TempDirectory();
        _key = JournalistKey.Generate();
        try
        {
            _key.Save(KeyFile);
            _sshd = await LoopbackSshd.StartAsync(_temp.Combine("ssh"),
                $"/usr/bin/dotnet {Oniondrop.Dll} pull --stdio --data-dir {DataDir} --as alice");
        }
        catch
        {
            TearDown(); // NUnit runs no TearDown after a failed SetUp
            throw;
        }
    }

    [TearDown]
    public void TearDown()
    {
        _sshd?.Dispose(); // null when SetUp failed before it started
        _key.Dispose();
        _temp.Dispose();
    }

    private string[] FetchArgs() =>
        ["fetch", _sshd.Target, "-o", Received, "--port", _sshd.Port.ToString(), .. _sshd.ClientOptions.Select(o => "--ssh-arg=" + o)];

    private SealedBlobStore OpenServerStore() => SealedBlobStore.Open(DataDir, new SealedBlobStoreOptions { LockWait = TimeSpan.FromSeconds(20) });

    private string[] ReceivedNames() => Directory.GetFiles(Received).Select(Path.GetFileName).Order().ToArray()!;

    [Test]
    public async Task Fetch_collects_a_thousand_submissions_and_open_recovers_every_uploaded_byte()
    {
        static int Size(int n) => 1 + n * 37 % 5000;
        Dictionary<string, int> ids;
        var clock = Stopwatch.StartNew();
        using (var store = OpenServerStore()) ids = await Submissions.CreateAsync(store, _key.PublicKey, 1000, Size);
        TestContext.Progress.WriteLine($"sealed and stored 1000 in {clock.Elapsed.TotalSeconds:0.0} s");
        clock.Restart();

        var fetch = await Oniondrop.RunAsync(FetchArgs(), TimeSpan.FromMinutes(3));
        TestContext.Progress.WriteLine($"fetched in {clock.Elapsed.TotalSeconds:0.0} s: {fetch.Stderr.Trim()}");
        clock.Restart();
        Assert.That(fetch.ExitCode, Is.Zero, fetch.ToString());
        Assert.That(fetch.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1), "one summary line when stderr is not a terminal");
        Assert.That(fetch.Stderr, Does.Contain("1000 new submission(s)"));
        Assert.That(ReceivedNames(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()));
        using (var store = OpenServerStore()) Assert.That(store.ListCommitted(), Is.Empty, "all acknowledged, deleted by the default policy");

        var opened = _temp.Combine("opened");
        var open = await Oniondrop.RunAsync(["open", "--key", KeyFile, "-o", opened, .. Directory.GetFiles(Received)], TimeSpan.FromMinutes(3));
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        TestContext.Progress.WriteLine($"opened in {clock.Elapsed.TotalSeconds:0.0} s");
        var folders = Directory.GetDirectories(opened);
        Assert.That(folders, Has.Length.EqualTo(1000));
        var seen = new HashSet<int>();
        foreach (var folder in folders)
        {
            var message = File.ReadAllText(Path.Combine(folder, SubmissionOpener.MessageFileName));
            var n = int.Parse(message["message number ".Length..]);
            Assert.That(seen.Add(n), $"submission {n} opened twice");
            Assert.That(File.ReadAllBytes(Path.Combine(folder, Submissions.FileName(n))), Is.EqualTo(Submissions.Content(n, Size(n))), folder);
        }
        Assert.That(seen, Is.EquivalentTo(ids.Values));
    }

    [Test]
    public async Task Killing_ssh_three_times_loses_nothing_and_the_rerun_leaves_each_blob_exactly_once()
    {
        const int count = 120;
        Dictionary<string, int> ids;
        Dictionary<string, string> hashes;
        using (var store = OpenServerStore())
        {
            ids = await Submissions.CreateAsync(store, _key.PublicKey, count, _ => 1 << 20);
            hashes = store.ListCommitted().ToDictionary(r => r.Id, r => r.Sha256Hex);
        }

        foreach (var killAt in new[] { 15, 45, 80 })
        {
            var psi = Oniondrop.StartInfo(FetchArgs());
            using var fetch = Process.Start(psi)!;
            var stderr = fetch.StandardError.ReadToEndAsync();
            var killed = false;
            while (!fetch.HasExited && !killed)
            {
                if (Directory.Exists(Received) && Directory.EnumerateFiles(Received, "*.sealed").Count() >= killAt)
                    foreach (var ssh in Submissions.Children(fetch.Id, "ssh")) { Process.GetProcessById(ssh).Kill(); killed = true; }
                await Task.Delay(5);
            }
            await fetch.WaitForExitAsync();
            Assert.That(killed, $"fetch finished before ssh could be killed at {killAt}: {await stderr}");
            Assert.That(fetch.ExitCode, Is.EqualTo(3), await stderr);
            Assert.That(await stderr, Does.Contain("connection lost").And.Contain("run fetch again"));

            Assert.That(Directory.GetFiles(Received, "*.partial"), Is.Empty, "no half-written file left");
            var here = ReceivedNames().ToHashSet();
            Assert.That(here, Has.Count.LessThan(count), "interrupted midway");
            foreach (var name in here)
                Assert.That(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(Received, name)))), Is.EqualTo(hashes[name[..^".sealed".Length]]), name);
            using var store = OpenServerStore();
            var onServer = store.ListCommitted().Select(r => r.Id).ToHashSet();
            var deleted = ids.Keys.Where(id => !onServer.Contains(id));
            Assert.That(deleted.Select(id => id + ".sealed"), Is.SubsetOf(here), "the server deleted only blobs the journalist holds");
        }

        var rerun = await Oniondrop.RunAsync(FetchArgs(), TimeSpan.FromMinutes(3));
        Assert.That(rerun.ExitCode, Is.Zero, rerun.ToString());
        Assert.That(ReceivedNames(), Is.EqualTo(ids.Keys.Select(id => id + ".sealed").Order()), "every blob exactly once, nothing else");
        foreach (var (id, sha) in hashes)
            Assert.That(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(Received, id + ".sealed")))), Is.EqualTo(sha), id);
        using (var store = OpenServerStore()) Assert.That(store.ListCommitted(), Is.Empty);
    }

    [System.Runtime.InteropServices.DllImport("libc")] private static extern long syscall(long number, nint a1, nint a2, nint a3);

    /// <summary>Landlock's ABI version, 0 when this kernel has none (landlock_create_ruleset(NULL, 0, VERSION)).</summary>
    private static long LandlockAbi() => Math.Max(0, syscall(444, 0, 0, 1));

    /// <summary>
    /// sshd runs the forced command as the daemon's user but outside the unit's sandbox: before it reads anything the
    /// pull takes no_new_privs, a seccomp filter and (with Landlock) a write confinement to the data directory
    /// (PullSandbox), for all its threads. Seen from outside (/proc) and from inside: gdb makes the waiting pull
    /// itself call socket() for each family and open() a new file inside and outside the data directory.
    /// </summary>
    [Test]
    public async Task The_forced_command_gives_up_new_privileges_and_every_socket_but_unix_ones_before_reading()
    {
        using (var store = OpenServerStore()) await Submissions.CreateAsync(store, _key.PublicKey, 1, _ => 10);
        using var ssh = Process.Start(ChildProcess.StartInfo("ssh", ["-T", .. _sshd.ClientArgs, _sshd.Target]))!;
        try
        {
            var greeting = await ssh.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60));
            if (greeting?.StartsWith("ONIONDROP-PULL ") != true) Assert.Fail($"no greeting: {greeting} {await ssh.StandardError.ReadToEndAsync()}");
            var pull = Directory.EnumerateDirectories("/proc").Select(Path.GetFileName).Where(d => d!.All(char.IsAsciiDigit)).Select(d => int.Parse(d!))
                .Where(pid =>
                {
                    try
                    {
                        var args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0'); // not sshd's `sh -c`, if it is still there
                        return Path.GetFileName(args[0]) is "dotnet" or "oniondrop" && string.Join(' ', args).Contains($"pull --stdio --data-dir {DataDir} ");
                    }
                    catch (IOException) { return false; }
                })
                .Single();
            var status = File.ReadAllLines($"/proc/{pull}/status");
            Assert.That(status, Does.Contain("NoNewPrivs:\t1").And.Contain("Seccomp:\t2"));

            const int AF_UNIX = 1, AF_INET = 2, AF_INET6 = 10, AF_NETLINK = 16, AF_PACKET = 17;
            var families = new[] { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET };
            var gdb = await ChildProcess.RunAsync("gdb", ["-p", pull.ToString(), "-batch", "-nx",
                .. families.SelectMany(f => new[] { "-ex", $"call (int)socket({f}, {(f == AF_NETLINK || f == AF_PACKET ? 3 : 1)}, 0)" })], TimeSpan.FromMinutes(2));
            var results = System.Text.RegularExpressions.Regex.Matches(gdb.Stdout, @"^\$(\d+) = (-?\d+)$", System.Text.RegularExpressions.RegexOptions.Multiline)
                .ToDictionary(m => families[int.Parse(m.Groups[1].Value) - 1], m => int.Parse(m.Groups[2].Value));
            Assert.That(results, Has.Count.EqualTo(families.Length), "gdb (scripts/setup-deps) called socket() in the pull\n" + gdb);
            Assert.That(results[AF_UNIX], Is.GreaterThanOrEqualTo(0), "a Unix socket (pull.sock) stays possible");
            Assert.That(results.Where(r => r.Key != AF_UNIX).Select(r => r.Value), Has.All.EqualTo(-1), "no IP, netlink or packet socket");

            // Writes: beneath the data directory only, where the kernel has Landlock (this one: ABI shown).
            var abi = LandlockAbi();
            TestContext.Out.WriteLine($"Landlock ABI {abi}");
            string inside = Path.Combine(DataDir, "probe-inside"), outside = _temp.Combine("probe-outside");
            var writes = await ChildProcess.RunAsync("gdb", ["-p", pull.ToString(), "-batch", "-nx",
                "-ex", $"call (int)open(\"{inside}\", 0101, 0600)", "-ex", $"call (int)open(\"{outside}\", 0101, 0600)"], TimeSpan.FromMinutes(2));
            Assert.That(File.Exists(inside), Is.True, "the pull writes its data directory\n" + writes);
            if (abi > 0) Assert.That(File.Exists(outside), Is.False, "Landlock: nothing outside the data directory\n" + writes);
            else Assert.Warn("no Landlock in this kernel: the pull's writes are not confined to the data directory");
            Assert.That(Directory.EnumerateFileSystemEntries(Path.GetTempPath(), $"*-{pull}-*"), Is.Empty, "no debugger pipe or diagnostics socket left in TMPDIR");

            ssh.StandardInput.Close(); // the session ends; the pull with it
            Assert.That(await ssh.StandardOutput.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(60)), Is.Empty);
        }
        finally { if (!ssh.HasExited) ssh.Kill(); }
    }

    [Test]
    public async Task The_forced_command_refuses_a_shell_or_any_other_command()
    {
        using (var store = OpenServerStore()) await Submissions.CreateAsync(store, _key.PublicKey, 1, _ => 10);
        foreach (var command in new[] { "bash", "sh -c id", "cat /etc/passwd", "oniondrop pull --stdio --data-dir /", "scp -f " + DataDir + "/catalog.db" })
        {
            var ssh = await ChildProcess.RunAsync("ssh", ["-T", .. _sshd.ClientArgs, _sshd.Target, command], TimeSpan.FromSeconds(60), stdin: "id\n");
            Assert.That(ssh.ExitCode, Is.Not.Zero, command);
            Assert.That(ssh.Stderr, Does.Contain("oniondrop pull: this key may only pull sealed submissions"), command + "\n" + ssh);
            Assert.That(ssh.Stdout, Is.Empty, command);
        }
        var sftp = await ChildProcess.RunAsync("sftp", ["-b", "-", "-P", _sshd.Port.ToString(), .. _sshd.ClientOptions, _sshd.Target], TimeSpan.FromSeconds(60), stdin: "ls\n");
        Assert.That(sftp.ExitCode, Is.Not.Zero, sftp.ToString());
        using (var store = OpenServerStore()) Assert.That(store.ListCommitted(), Has.Count.EqualTo(1), "nothing was taken");
    }

    /// <summary>
    /// The daemon started while a journalist's pull is served directly through sshd, as deployed (the forced command,
    /// sandboxed): the daemon serves at once, and the pull ends, its line and its exit code (3) carried by ssh to the
    /// journalist. The journalist here (the test, speaking the protocol) asks for one large blob and reads none of it,
    /// so the pull is stuck writing it: the blob is cut off, never acknowledged, and fetched whole by the next run.
    /// </summary>
    [Test]
    public async Task A_daemon_started_during_a_pull_over_ssh_serves_at_once_and_the_journalist_is_told_to_run_fetch_again()
    {
        SubmissionRecord blob;
        using (var store = OpenServerStore())
        {
            await Submissions.CreateAsync(store, _key.PublicKey, 1, _ => 32 << 20); // more than ssh and the sockets hold
            blob = store.ListCommitted().Single();
        }
        using var ssh = Process.Start(ChildProcess.StartInfo("ssh", ["-T", .. _sshd.ClientArgs, _sshd.Target]))!;
        try
        {
            var stderr = ssh.StandardError.ReadToEndAsync();
            var fromPull = ssh.StandardOutput.BaseStream;
            var greeting = new List<byte>();
            var one = new byte[1];
            while (greeting.LastOrDefault() != '\n' && await fromPull.ReadAsync(one).AsTask().WaitAsync(TimeSpan.FromSeconds(60)) == 1) greeting.Add(one[0]);
            Assert.That(System.Text.Encoding.ASCII.GetString([.. greeting]), Is.EqualTo(PullProtocol.Greeting + "\n"));
            await ssh.StandardInput.WriteAsync($"GET {blob.Id}\n");
            await ssh.StandardInput.FlushAsync();
            await Task.Delay(1000);

            var clock = Stopwatch.StartNew();
            await using var daemon = await DaemonProcess.StartAsync(DataDir, _key.PublicKey.ToString());
            TestContext.Out.WriteLine($"the daemon served its form {clock.Elapsed.TotalSeconds:0.0} s after its start");
            Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(20)), "the daemon waited for the pull to end");

            // The journalist reads on: what was on its way, then the end of the session.
            var received = new MemoryStream();
            await fromPull.CopyToAsync(received).WaitAsync(TimeSpan.FromSeconds(60));
            await ssh.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.That(ssh.ExitCode, Is.EqualTo(3), await stderr);
            Assert.That(await stderr, Does.Contain("oniondrop pull: the drop box's daemon started and takes the store over: this pull stopped; " +
                                                   "nothing unacknowledged was deleted: run fetch again to resume"));
            Assert.That(received.Length, Is.LessThan(blob.Size), "the blob on its way was cut off");
            Assert.That(File.Exists(Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName, blob.Id + ".sealed")), "and kept on the server");

            var rerun = await Oniondrop.RunAsync(FetchArgs(), TimeSpan.FromMinutes(3));   // relayed to the daemon
            Assert.That(rerun.ExitCode, Is.Zero, rerun.ToString());
            Assert.That(rerun.Stderr, Does.Contain("1 new submission(s)"));
            Assert.That(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(Received, blob.Id + ".sealed")))), Is.EqualTo(blob.Sha256Hex));
            Assert.That(Directory.GetFiles(Path.Combine(DataDir, SealedBlobStore.BlobsDirectoryName), "*.sealed"), Is.Empty, "deleted by the daemon once acknowledged");
        }
        finally { if (!ssh.HasExited) ssh.Kill(); }
    }
}
