using System.Diagnostics;
using OnionDrop.Testing;
using OnionDrop.Tor;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// A tor run the way Debian runs tor@default (/usr/share/tor/tor-service-defaults-torrc): started as root with
/// `User debian-tor`, its control socket group-writable and its cookie group-readable in a debian-tor directory;
/// plus a throwaway account (a uid and gid nobody else has) for the daemon, with debian-tor as its one
/// supplementary group, as the unit's drop-in gives it. Everything lives under one directory removed on dispose.
/// </summary>
public sealed class DebianTor : IAsyncDisposable
{
    public const string User = "debian-tor";

    /// <summary>No network: an authority nobody can reach. (DisableNetwork 1 would also keep tor from opening its control socket.)</summary>
    public static readonly string[] Offline = [OfflineTor.DirAuthority];

    private readonly TempDirectory _base;
    private readonly Process _tor;
    private readonly Task<string> _output;

    private DebianTor(TempDirectory @base, Process tor, Task<string> output, int torUid, int torGid, int daemonUid)
    {
        _base = @base; _tor = tor; _output = output; TorUid = torUid; TorGid = torGid; DaemonUid = daemonUid;
    }

    public int TorUid { get; }
    public int TorGid { get; }
    public int DaemonUid { get; }
    public int TorPid => _tor.Id;
    public bool HasExited => _tor.HasExited;
    public string ControlSocket => _base.Combine("run-tor", "control");
    public string Combine(params string[] parts) => _base.Combine(parts);

    /// <param name="network">the lines that say which Tor network to use (<see cref="Offline"/>, or a private network's join lines)</param>
    public static async Task<DebianTor> StartAsync(IEnumerable<string> network)
    {
        var torUid = File.ReadLines("/etc/passwd").Select(l => l.Split(':')).Where(f => f.Length > 3 && f[0] == User).Select(f => int.Parse(f[2])).FirstOrDefault(-1);
        Assert.That(torUid, Is.Not.EqualTo(-1), "no debian-tor account: install Debian's tor package (scripts/setup-deps)");
        var torGid = UnixAccount.GroupId(User)!.Value;
        var daemonUid = Enumerable.Range(61000, 1000).First(u => UnixAccount.UserName(u) == u.ToString() && UnixAccount.GroupName(u) == u.ToString());

        var @base = new TempDirectory("oniondrop-systemtor-");
        File.SetUnixFileMode(@base.Path, Mode("755"));
        // Like /run/tor (02755 in tor@default's ExecStartPre) and /var/lib/tor (0700), both debian-tor's.
        await Make(@base.Combine("run-tor"), "2750", $"{User}:{User}");
        await Make(@base.Combine("lib-tor"), "700", $"{User}:{User}");
        var torrc = @base.Combine("torrc");
        await File.WriteAllLinesAsync(torrc,
        [
            $"User {User}",
            $"DataDirectory {@base.Combine("lib-tor")}",
            $"ControlSocket {@base.Combine("run-tor", "control")} GroupWritable RelaxDirModeCheck",
            "ControlSocketsGroupWritable 1",
            "CookieAuthentication 1",
            "CookieAuthFileGroupReadable 1",
            $"CookieAuthFile {@base.Combine("run-tor", "control.authcookie")}",
            "SocksPort 0",
            .. network,
            "Log notice stdout",
            $"__OwningControllerProcess {Environment.ProcessId}",
        ]);
        var tor = Process.Start(ChildProcess.StartInfo(TorProcess.ResolveTor("tor"), ["-f", torrc, "--defaults-torrc", "/dev/null"]))!;
        // Drained, so tor never blocks on a full pipe; kept for failure messages.
        var output = tor.StandardOutput.ReadToEndAsync();
        _ = tor.StandardError.ReadToEndAsync();
        var debianTor = new DebianTor(@base, tor, output, torUid, torGid, daemonUid);
        for (var i = 0; i < 150 && !File.Exists(debianTor.ControlSocket); i++) await Task.Delay(100);
        if (!File.Exists(debianTor.ControlSocket))
        {
            await debianTor.DisposeAsync();
            Assert.Fail("tor opened no control socket\n" + (tor.HasExited ? output.Result : ""));
        }
        Assert.That(PosixProcess.Uid(tor.Id), Is.EqualTo(torUid), "tor runs as debian-tor");
        return debianTor;
    }

    /// <summary>
    /// A data directory (0700, as install.sh makes /var/lib/oniondrop) and a web socket directory, both the daemon's,
    /// under NAME. The latter as the unit's drop-in leaves /run/oniondrop (RuntimeDirectory=, then ExecStartPre=+install:
    /// 2710, group debian-tor), or <paramref name="byHand"/> as a bare 0710 directory of the daemon's own group.
    /// </summary>
    public async Task<(string Data, string RunDir)> DaemonDirectoriesAsync(string name, bool byHand = false)
    {
        var data = _base.Combine(name, "data");
        var runDir = _base.Combine(name, "run");
        Directory.CreateDirectory(_base.Combine(name));
        File.SetUnixFileMode(_base.Combine(name), Mode("755"));
        await Make(data, "700", $"{DaemonUid}:{DaemonUid}");
        if (byHand) await Make(runDir, "710", $"{DaemonUid}:{DaemonUid}");
        else await Make(runDir, "2710", $"{DaemonUid}:{User}");
        return (data, runDir);
    }

    /// <summary>A wrapper that runs a command as the daemon's throwaway user, with debian-tor as its one supplementary group.</summary>
    public string[] AsDaemonUser() =>
        ["sh", "-c", "u=$0 g=$1; shift; HOME=/nonexistent setpriv --reuid=$u --regid=$u --groups=$g --inh-caps=-all -- \"$@\"; exit $?",
         DaemonUid.ToString(), TorGid.ToString()];

    /// <summary>The same, under `strace -f`, which writes the calls named in <paramref name="calls"/> (comma-separated) to <paramref name="trace"/>.</summary>
    public string[] AsDaemonUserTraced(string trace, string calls) =>
        ["strace", "-f", "-qq", "--seccomp-bpf", "-s", "300", "-o", trace, "-e", "trace=" + calls,
         "setpriv", $"--reuid={DaemonUid}", $"--regid={DaemonUid}", $"--groups={TorGid}", "--inh-caps=-all", "--", "env", "HOME=/nonexistent"];

    /// <summary>
    /// The same, under the two rules of the unit's sandbox that matter here, which no systemd runs for us: chown fails
    /// with EPERM (SystemCallFilter=~@privileged holds @chown; SystemCallErrorNumber=EPERM), injected by strace; and
    /// every chmod is written to <paramref name="trace"/>, to show none sets a setgid or setuid bit (RestrictSUIDSGID=yes).
    /// </summary>
    public string[] AsDaemonUserInTheUnitsSandbox(string trace) =>
        ["strace", "-f", "-qq", "--seccomp-bpf", "-o", trace, "-e", "trace=chown,fchown,lchown,fchownat,chmod,fchmod,fchmodat",
         "-e", "inject=chown,fchown,lchown,fchownat:error=EPERM",
         "setpriv", $"--reuid={DaemonUid}", $"--regid={DaemonUid}", $"--groups={TorGid}", "--inh-caps=-all", "--", "env", "HOME=/nonexistent"];

    /// <summary>
    /// DaemonProcess writes the config file with this process's umask, which an in-process store in another test
    /// may have set to 077 (SealedBlobStore.Open); the daemon's user must be able to read it.
    /// </summary>
    public static async Task<T> ReadableByTheDaemon<T>(Func<Task<T>> start)
    {
        var before = OnionDrop.Storage.Posix.SetUmask(Convert.ToInt32("022", 8));
        try { return await start(); }
        finally { OnionDrop.Storage.Posix.SetUmask(before); }
    }

    public static async Task Make(string dir, string mode, string owner)
    {
        Directory.CreateDirectory(dir);
        var r = await ChildProcess.RunAsync("chown", [owner, dir]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        File.SetUnixFileMode(dir, Mode(mode));
    }

    public static UnixFileMode Mode(string octal) => (UnixFileMode)Convert.ToInt32(octal, 8);

    public async ValueTask DisposeAsync()
    {
        if (!_tor.HasExited)
        {
            _tor.Kill();
            await _tor.WaitForExitAsync();
        }
        _tor.Dispose();
        _base.Dispose();
    }
}
