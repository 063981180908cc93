using OnionDrop.Sealing;
using OnionDrop.Testing;
using OnionDrop.Tor;
using static OnionDrop.Daemon.Tests.DebianTor;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// `--tor system` against a tor run the way Debian runs tor@default (<see cref="DebianTor"/>: as debian-tor),
/// with the daemon as a third, unprivileged user. No network here: the proof that tor can serve sources is the
/// very call tor makes for each stream, connect() to web.sock as debian-tor. It answers with the form in the
/// new layout and is refused in the old one (0600 in the 0700 data directory), which the daemon now also
/// refuses at start with the fix. (Through tor itself, on a private network: <see cref="SystemTorOnionTests"/>.)
/// AppArmor is not enforced on this machine: the rule install.sh adds is checked as text by its own test.
/// </summary>
[NonParallelizable, Category("EndToEnd")]
public class SystemTorTests
{
    private DebianTor _tor = null!;
    private readonly string _recipient = JournalistKey.Generate().PublicKey.ToString();

    [OneTimeSetUp]
    public async Task StartTorAsDebianTor() => _tor = await DebianTor.StartAsync(Offline);

    [OneTimeTearDown]
    public async Task StopTor()
    {
        if (_tor is not null) await _tor.DisposeAsync();
    }

    [Test]
    public async Task Tor_as_debian_tor_reaches_the_web_socket_of_a_daemon_running_as_another_user()
    {
        var (data, runDir) = await _tor.DaemonDirectoriesAsync("ok");
        var trace = _tor.Combine("ok", "strace.txt");
        await using var daemon = await ReadableByTheDaemon(() => DaemonProcess.StartAsync(data, _recipient, tor: "system", settings: new Dictionary<string, object>
        {
            ["SystemTorControlSocket"] = _tor.ControlSocket, ["WebSocketDirectory"] = runDir, ["WebSocketGroup"] = User,
        }, wrapper: _tor.AsDaemonUserInTheUnitsSandbox(trace)));

        Assert.That(PosixProcess.Uid(daemon.Pid), Is.EqualTo(_tor.DaemonUid), "the daemon runs as the throwaway user, neither root nor debian-tor");
        var onion = await OnionAddressAsync(daemon);
        var socket = Path.Combine(runDir, "web.sock");
        var uid = _tor.DaemonUid;
        Assert.Multiple(() =>
        {
            Assert.That(UnixAccess.Of(data), Is.EqualTo(new UnixAccess.Stat(uid, uid, Mode("700"))), "the data directory stays 0700");
            Assert.That(UnixAccess.Of(runDir), Is.EqualTo(new UnixAccess.Stat(uid, _tor.TorGid, Mode("2710"))));
            Assert.That(UnixAccess.Of(socket), Is.EqualTo(new UnixAccess.Stat(uid, _tor.TorGid, Mode("660"))));
            Assert.That(File.Exists(Path.Combine(data, "web.sock")), Is.False);
        });

        // What tor does for every source's stream: connect() to the target as debian-tor.
        var asTor = await CurlAs(User, socket, onion);
        Assert.That(asTor.ExitCode, Is.EqualTo(0), asTor.ToString());
        Assert.That(asTor.Stdout, Does.StartWith("HTTP/1.1 200").And.Contain("<form").And.Contain("multipart/form-data"));
        // Anyone else is refused, as before.
        var asNobody = await CurlAs("nobody", socket, onion);
        Assert.That(asNobody.ExitCode, Is.Not.EqualTo(0), asNobody.ToString());
        Assert.That(asNobody.Stderr, Does.Contain("ermission denied").Or.Contain("Couldn't connect"), asNobody.ToString());

        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        Assert.That(_tor.HasExited, Is.False, "the system tor is not the daemon's to stop");

        // Under the unit the daemon may neither chown nor set a setgid bit: it needed neither.
        var calls = File.ReadAllLines(trace).Where(l => l.Contains("chown(") || l.Contains("chmod")).ToList();
        TestContext.Out.WriteLine(string.Join('\n', calls));
        Assert.That(calls.Where(l => l.Contains("chown")), Is.Empty, "chown fails with EPERM under the unit");
        Assert.That(calls.Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"chmod(at)?\(.*, 0[2-7][0-7]{3}\)")), Is.Empty, "RestrictSUIDSGID=yes");
        Assert.That(calls, Has.Some.Contains("web.sock").And.Contains("0660"), "the trace saw the socket made 0660");
    }

    [Test]
    public async Task Started_by_hand_the_daemon_gives_the_directory_to_the_group_itself()
    {
        var (data, runDir) = await _tor.DaemonDirectoriesAsync("byhand", byHand: true);
        await using var daemon = await ReadableByTheDaemon(() => DaemonProcess.StartAsync(data, _recipient, tor: "system", settings: new Dictionary<string, object>
        {
            ["SystemTorControlSocket"] = _tor.ControlSocket, ["WebSocketDirectory"] = runDir, ["WebSocketGroup"] = User,
        }, wrapper: _tor.AsDaemonUser()));
        var onion = await OnionAddressAsync(daemon);
        var uid = _tor.DaemonUid;
        Assert.That(UnixAccess.Of(runDir), Is.EqualTo(new UnixAccess.Stat(uid, _tor.TorGid, Mode("2710"))));
        Assert.That(UnixAccess.Of(Path.Combine(runDir, "web.sock")), Is.EqualTo(new UnixAccess.Stat(uid, _tor.TorGid, Mode("660"))));
        var asTor = await CurlAs(User, Path.Combine(runDir, "web.sock"), onion);
        Assert.That(asTor.Stdout, Does.StartWith("HTTP/1.1 200"), asTor.ToString());
    }

    [Test]
    public async Task The_old_layout_is_unreachable_for_debian_tor()
    {
        // The socket 0600 in the 0700 data directory (no WebSocketDirectory), served without tor.
        var (data, _) = await _tor.DaemonDirectoriesAsync("old");
        await using var daemon = await ReadableByTheDaemon(() => DaemonProcess.StartAsync(data, _recipient, tor: "none", wrapper: _tor.AsDaemonUser()));
        var socket = Path.Combine(data, "web.sock");
        var asRoot = await CurlAs("root", socket, "localhost");
        Assert.That(asRoot.Stdout, Does.StartWith("HTTP/1.1 200"), "the socket serves: " + asRoot);
        var asTor = await CurlAs(User, socket, "localhost");
        Assert.That(asTor.ExitCode, Is.Not.EqualTo(0), asTor.ToString());
        Assert.That(asTor.Stderr, Does.Contain("ermission denied").Or.Contain("Couldn't connect"), asTor.ToString());
    }

    [TestCase(false)] // the old layout: DATA/web.sock
    [TestCase(true)]  // a directory of its own, but shared with no group
    public async Task A_layout_tor_cannot_reach_stops_the_start_with_the_fix(bool ownDirectory)
    {
        var (data, runDir) = await _tor.DaemonDirectoriesAsync(ownDirectory ? "nogroup" : "datadir", byHand: true);
        var config = Path.Combine(Path.GetDirectoryName(data)!, "bad.json");
        var settings = ownDirectory ? $", \"WebSocketDirectory\": \"{runDir}\"" : "";
        await File.WriteAllTextAsync(config, $"{{ \"OnionDrop\": {{ \"SystemTorControlSocket\": \"{_tor.ControlSocket}\"{settings} }} }}");
        File.SetUnixFileMode(config, Mode("644"));
        var wrapper = _tor.AsDaemonUser();
        var psi = ChildProcess.StartInfo(wrapper[0], [.. wrapper.Skip(1), "dotnet", Oniondrop.Dll, "serve", "--config", config,
            "--data-dir", data, "--recipient", _recipient, "--tor", "system"]);
        var r = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(90));
        Assert.That(r.ExitCode, Is.Not.EqualTo(0), r.ToString());
        var line = r.Stderr.Split('\n').SingleOrDefault(l => l.StartsWith("oniondrop serve: "));
        Assert.That(line, Is.Not.Null, r.ToString());
        Assert.That(line, Does.Contain("the system tor runs as debian-tor, which cannot reach the web socket").And.Contain(" is 0700 ").And.Contain("which debian-tor may not enter")
            .And.Contain("WebSocketDirectory = /run/oniondrop").And.Contain("WebSocketGroup = debian-tor"));
    }

    /// <summary>
    /// The onion service's secret key is the daemon's to keep in system mode, and losing it loses the address every
    /// source was given. A power cut can undo what is only in the page cache, so the order is checked from the
    /// kernel's side: on the first start the key goes to KEY.tmp, is fsynced, renamed to KEY, and the data directory
    /// is fsynced after the rename (without which the new name may not survive, however durable the file is).
    /// </summary>
    [Test]
    public async Task The_first_start_writes_the_onion_key_durably_rename_and_directory_included()
    {
        var (data, runDir) = await _tor.DaemonDirectoriesAsync("keysync");
        var trace = _tor.Combine("keysync", "strace.txt");
        await using (var daemon = await ReadableByTheDaemon(() => DaemonProcess.StartAsync(data, _recipient, tor: "system", settings: new Dictionary<string, object>
               {
                   ["SystemTorControlSocket"] = _tor.ControlSocket, ["WebSocketDirectory"] = runDir, ["WebSocketGroup"] = User,
               }, wrapper: _tor.AsDaemonUserTraced(trace, "openat,close,write,pwrite64,rename,renameat,renameat2,link,linkat,fsync,fdatasync"))))
        {
            await OnionAddressAsync(daemon);
            Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        }

        var key = Path.Combine(data, "onion-service.key");
        Assert.That(File.Exists(key), "the key file was written");
        var calls = StraceLog.Parse(File.ReadLines(trace));
        var problems = KeyWriteOrder(calls, key);
        TestContext.Out.WriteLine(string.Join('\n', calls.Where(c => c.Path is { } p && (p.StartsWith(key) || p == data) || StraceLog.Paths(c).Any(p => p.StartsWith(key)))
            .Select(c => $"{c.Start}: {c.Name}({c.Args}) = {c.Result}  [{c.Path}]")));
        Assert.That(problems, Is.Empty);
    }

    /// <summary>What is missing or out of order in writing <paramref name="key"/> by temp file and rename; empty when all is well.</summary>
    private static List<string> KeyWriteOrder(IReadOnlyList<Syscall> calls, string key)
    {
        var temp = key + ".tmp";
        var dir = Path.GetDirectoryName(key)!;
        bool IsSync(Syscall c) => c.Name is "fsync" or "fdatasync" && c.Result == 0;
        var writes = calls.Where(c => c.Name is "write" or "pwrite64" && c.Path == temp && c.Result > 0).ToList();
        var sync = calls.LastOrDefault(c => IsSync(c) && c.Path == temp);
        // .NET's File.Move without overwrite is rename(2), or link(2) then unlink(2) on some versions: either makes the name.
        var rename = calls.FirstOrDefault(c => c.Name is "rename" or "renameat" or "renameat2" or "link" or "linkat" && c.Result == 0
                                               && StraceLog.Paths(c) is [var from, var to] && from == temp && to == key);
        if (writes.Count == 0) return ["no write to " + temp];
        if (sync is null) return [temp + " is never fsynced"];
        if (rename is null) return ["no rename " + temp + " -> " + key];
        var problems = new List<string>();
        if (writes.Any(w => !w.EndedBefore(sync))) problems.Add("a write to the key after its fsync");
        if (!sync.EndedBefore(rename)) problems.Add("renamed before the key's fsync returned");
        // Before the daemon logs that it keeps the key, so a later fsync of the directory (a catalog commit's) cannot pass for it.
        var said = calls.FirstOrDefault(c => c.Name is "write" && c.Args.Contains("Created a new onion service key"));
        if (said is null) problems.Add("the daemon never logged \"Created a new onion service key\"");
        else if (!calls.Any(c => IsSync(c) && c.Path == dir && rename.EndedBefore(c) && c.EndedBefore(said)))
            problems.Add($"the data directory {dir} is not fsynced between the rename (trace line {rename.Start}) and the log line saying the key is kept " +
                         $"(line {said.Start}): a power cut can lose the key's name");
        return problems;
    }

    /// <summary>curl as <paramref name="user"/> to the socket; stdout starts with the status line ("HTTP/1.1 200 OK").</summary>
    private static Task<ProcessResult> CurlAs(string user, string socket, string host) =>
        ChildProcess.RunAsync("runuser", ["-u", user, "--", "curl", "-sS", "-i", "--max-time", "20", "--unix-socket", socket, $"http://{host}/"],
            TimeSpan.FromSeconds(30));

    internal static async Task<string> OnionAddressAsync(DaemonProcess daemon)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            var m = System.Text.RegularExpressions.Regex.Match(daemon.Output, "Onion service address: ([a-z2-7]{56}\\.onion)");
            if (m.Success) return m.Groups[1].Value;
            await Task.Delay(100);
        }
        Assert.Fail("the daemon did not log its onion address\n" + daemon.Output);
        return "";
    }
}
