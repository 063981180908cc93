using System.Diagnostics;
using OnionDrop.Sealing;
using OnionDrop.Testing;
using OnionDrop.Tor;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// `--tor system` against a tor run the way Debian runs tor@default: started as root with `User debian-tor`,
/// a group-writable control socket and a group-readable cookie (/usr/share/tor/tor-service-defaults-torrc),
/// and the daemon as a third, unprivileged user in group debian-tor (as the unit's drop-in makes it). The
/// proof that tor can serve sources is the very call tor makes for each stream: connect() to web.sock as
/// debian-tor. It answers with the form in the new layout and is refused in the old one (0600 in the 0700
/// data directory), which the daemon now also refuses at start with the fix. AppArmor is not enforced here:
/// the profile rule install.sh adds is checked by its own test, not by the kernel.
/// </summary>
[NonParallelizable, Category("EndToEnd")]
public class SystemTorTests
{
    private const string TorUser = "debian-tor";
    private static readonly string[] Offline = ["DirAuthority unreachable orport=1 no-v2 v3ident=0000000000000000000000000000000000000000 127.0.0.1:1 0000000000000000000000000000000000000000"];

    private TempDirectory _base = null!;
    private Process _tor = null!;
    private Task<string> _torOutput = null!;
    private int _torGid;
    private int _uid;
    private string ControlSocket => _base.Combine("run-tor", "control");
    private readonly string _recipient = JournalistKey.Generate().PublicKey.ToString();

    [OneTimeSetUp]
    public async Task StartTorAsDebianTor()
    {
        var torAccount = UnixAccount.Find(FindUid(TorUser));
        Assert.That(torAccount, Is.Not.Null, "no debian-tor account: install Debian's tor package (scripts/setup-deps)");
        _torGid = UnixAccount.GroupId(TorUser)!.Value;
        // A throwaway account for the daemon: a uid and gid nobody else has, in group debian-tor only for this process.
        _uid = Enumerable.Range(61000, 1000).First(u => UnixAccount.UserName(u) == u.ToString() && UnixAccount.GroupName(u) == u.ToString());

        _base = new TempDirectory("oniondrop-systemtor-");
        File.SetUnixFileMode(_base.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        // Like /run/tor (02755 in tor@default's ExecStartPre) and /var/lib/tor (0700), both debian-tor's.
        await Make(_base.Combine("run-tor"), "2750", $"{TorUser}:{TorUser}");
        await Make(_base.Combine("lib-tor"), "700", $"{TorUser}:{TorUser}");
        var torrc = _base.Combine("torrc");
        await File.WriteAllLinesAsync(torrc,
        [
            $"User {TorUser}",
            $"DataDirectory {_base.Combine("lib-tor")}",
            $"ControlSocket {ControlSocket} GroupWritable RelaxDirModeCheck",
            "ControlSocketsGroupWritable 1",
            "CookieAuthentication 1",
            "CookieAuthFileGroupReadable 1",
            $"CookieAuthFile {_base.Combine("run-tor", "control.authcookie")}",
            "SocksPort 0",
            // No network here; DisableNetwork 1 would also keep tor from opening its control socket.
            .. Offline.Select(l => l),
            "Log notice stdout",
            $"__OwningControllerProcess {Environment.ProcessId}",
        ]);
        _tor = Process.Start(ChildProcess.StartInfo(TorProcess.ResolveTor("tor"), ["-f", torrc, "--defaults-torrc", "/dev/null"]))!;
        // Drained, so tor never blocks on a full pipe; kept for failure messages.
        _torOutput = _tor.StandardOutput.ReadToEndAsync();
        _ = _tor.StandardError.ReadToEndAsync();
        for (var i = 0; i < 150 && !File.Exists(ControlSocket); i++) await Task.Delay(100);
        Assert.That(File.Exists(ControlSocket), Is.True, () => "tor opened no control socket\n" + (_tor.HasExited ? _torOutput.Result : ""));
        Assert.That(Uid(_tor.Id), Is.EqualTo(torAccount!.Uid), "tor runs as debian-tor");
    }

    [OneTimeTearDown]
    public async Task StopTor()
    {
        if (_tor is { HasExited: false })
        {
            _tor.Kill();
            await _tor.WaitForExitAsync();
        }
        _tor?.Dispose();
        _base?.Dispose();
    }

    [Test]
    public async Task Tor_as_debian_tor_reaches_the_web_socket_of_a_daemon_running_as_another_user()
    {
        var (data, runDir) = await DaemonDirectories("ok");
        await using var daemon = await ReadableByTheDaemon(() => DaemonProcess.StartAsync(data, _recipient, tor: "system", settings: new Dictionary<string, object>
        {
            ["SystemTorControlSocket"] = ControlSocket, ["WebSocketDirectory"] = runDir, ["WebSocketGroup"] = TorUser,
        }, wrapper: AsDaemonUser()));

        Assert.That(Uid(daemon.Pid), Is.EqualTo(_uid), "the daemon runs as the throwaway user, neither root nor debian-tor");
        var onion = await OnionAddressAsync(daemon);
        var socket = Path.Combine(runDir, "web.sock");
        Assert.Multiple(() =>
        {
            Assert.That(UnixAccess.Of(data), Is.EqualTo(new UnixAccess.Stat(_uid, _uid, Mode("700"))), "the data directory stays 0700");
            Assert.That(UnixAccess.Of(runDir), Is.EqualTo(new UnixAccess.Stat(_uid, _torGid, Mode("2710"))));
            Assert.That(UnixAccess.Of(socket), Is.EqualTo(new UnixAccess.Stat(_uid, _torGid, Mode("660"))));
            Assert.That(File.Exists(Path.Combine(data, "web.sock")), Is.False);
        });

        // What tor does for every source's stream: connect() to the target as debian-tor.
        var asTor = await CurlAs(TorUser, socket, onion);
        Assert.That(asTor.ExitCode, Is.EqualTo(0), asTor.ToString());
        Assert.That(asTor.Stdout, Does.StartWith("HTTP/1.1 200").And.Contain("<form").And.Contain("multipart/form-data"));
        // Anyone else is refused, as before.
        var asNobody = await CurlAs("nobody", socket, onion);
        Assert.That(asNobody.ExitCode, Is.Not.EqualTo(0), asNobody.ToString());
        Assert.That(asNobody.Stderr, Does.Contain("ermission denied").Or.Contain("Couldn't connect"), asNobody.ToString());

        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        Assert.That(_tor.HasExited, Is.False, "the system tor is not the daemon's to stop");
    }

    [Test]
    public async Task The_old_layout_is_unreachable_for_debian_tor()
    {
        // The socket 0600 in the 0700 data directory (no WebSocketDirectory), served without tor.
        var (data, _) = await DaemonDirectories("old");
        await using var daemon = await ReadableByTheDaemon(() => DaemonProcess.StartAsync(data, _recipient, tor: "none", wrapper: AsDaemonUser()));
        var socket = Path.Combine(data, "web.sock");
        var asRoot = await CurlAs("root", socket, "localhost");
        Assert.That(asRoot.Stdout, Does.StartWith("HTTP/1.1 200"), "the socket serves: " + asRoot);
        var asTor = await CurlAs(TorUser, socket, "localhost");
        Assert.That(asTor.ExitCode, Is.Not.EqualTo(0), asTor.ToString());
        Assert.That(asTor.Stderr, Does.Contain("ermission denied").Or.Contain("Couldn't connect"), asTor.ToString());
    }

    [TestCase(false)] // the old layout: DATA/web.sock
    [TestCase(true)]  // a directory of its own, but shared with no group
    public async Task A_layout_tor_cannot_reach_stops_the_start_with_the_fix(bool ownDirectory)
    {
        var (data, runDir) = await DaemonDirectories(ownDirectory ? "nogroup" : "datadir");
        var config = Path.Combine(Path.GetDirectoryName(data)!, "bad.json");
        var settings = ownDirectory ? $", \"WebSocketDirectory\": \"{runDir}\"" : "";
        await File.WriteAllTextAsync(config, $"{{ \"OnionDrop\": {{ \"SystemTorControlSocket\": \"{ControlSocket}\"{settings} }} }}");
        File.SetUnixFileMode(config, Mode("644"));
        var psi = ChildProcess.StartInfo(AsDaemonUser()[0], [.. AsDaemonUser().Skip(1), "dotnet", Oniondrop.Dll, "serve", "--config", config,
            "--data-dir", data, "--recipient", _recipient, "--tor", "system"]);
        var r = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(90));
        Assert.That(r.ExitCode, Is.Not.EqualTo(0), r.ToString());
        var line = r.Stderr.Split('\n').SingleOrDefault(l => l.StartsWith("oniondrop serve: "));
        Assert.That(line, Is.Not.Null, r.ToString());
        Assert.That(line, Does.Contain("the system tor runs as debian-tor, which cannot reach the web socket").And.Contain(" is 0700 ").And.Contain("which debian-tor may not enter")
            .And.Contain("WebSocketDirectory = /run/oniondrop").And.Contain("WebSocketGroup = debian-tor"));
    }

    private async Task<(string Data, string RunDir)> DaemonDirectories(string name)
    {
        var data = _base.Combine(name, "data");
        var runDir = _base.Combine(name, "run");
        Directory.CreateDirectory(_base.Combine(name));
        File.SetUnixFileMode(_base.Combine(name), Mode("755"));
        // As install.sh makes /var/lib/oniondrop, and systemd's RuntimeDirectory= /run/oniondrop (RuntimeDirectoryMode=0710).
        await Make(data, "700", $"{_uid}:{_uid}");
        await Make(runDir, "710", $"{_uid}:{_uid}");
        return (data, runDir);
    }

    /// <summary>
    /// DaemonProcess writes the config file with this process's umask, which an in-process store in another test
    /// may have set to 077 (SealedBlobStore.Open); the daemon's user must be able to read it.
    /// </summary>
    private static async Task<T> ReadableByTheDaemon<T>(Func<Task<T>> start)
    {
        var before = OnionDrop.Storage.Posix.SetUmask(Convert.ToInt32("022", 8));
        try { return await start(); }
        finally { OnionDrop.Storage.Posix.SetUmask(before); }
    }

    /// <summary>The daemon as the throwaway user with debian-tor as its one supplementary group (SupplementaryGroups=).</summary>
    private string[] AsDaemonUser() =>
        ["sh", "-c", "u=$0 g=$1; shift; HOME=/nonexistent setpriv --reuid=$u --regid=$u --groups=$g --inh-caps=-all -- \"$@\"; exit $?",
         _uid.ToString(), _torGid.ToString()];

    /// <summary>curl as <paramref name="user"/> to the socket; stdout starts with the status line ("HTTP/1.1 200 OK").</summary>
    private static Task<ProcessResult> CurlAs(string user, string socket, string host) =>
        ChildProcess.RunAsync("runuser", ["-u", user, "--", "curl", "-sS", "-i", "--max-time", "20", "--unix-socket", socket, $"http://{host}/"],
            TimeSpan.FromSeconds(30));

    private static async Task<string> OnionAddressAsync(DaemonProcess daemon)
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

    private static async Task Make(string dir, string mode, string owner)
    {
        Directory.CreateDirectory(dir);
        var r = await ChildProcess.RunAsync("chown", [owner, dir]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        File.SetUnixFileMode(dir, Mode(mode));
    }

    private static UnixFileMode Mode(string octal) => (UnixFileMode)Convert.ToInt32(octal, 8);

    private static int FindUid(string user) =>
        File.ReadLines("/etc/passwd").Select(l => l.Split(':')).Where(f => f.Length > 3 && f[0] == user).Select(f => int.Parse(f[2])).FirstOrDefault(-1);

    private static int Uid(int pid) =>
        int.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);
}
