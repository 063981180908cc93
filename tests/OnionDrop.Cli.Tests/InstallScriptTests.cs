using OnionDrop.Daemon.Hosting;
using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>scripts/install.sh into a throwaway root: complete, idempotent, never touching the operator's config or data.</summary>
[Category("EndToEnd")]
public class InstallScriptTests
{
    /// <summary>
    /// A frozen copy of the sources (no bin/obj/.git): both runs must build the very same thing, even while
    /// someone edits the working tree.
    /// </summary>
    internal static async Task<string> CopyOfTheRepository(TempDirectory tmp)
    {
        var copy = tmp.Combine("src");
        Directory.CreateDirectory(copy);
        var r = await ChildProcess.RunAsync("bash", ["-c",
            "tar -C \"$1\" --exclude=./.git --exclude=bin --exclude=obj --exclude=./artifacts --exclude=./TestResults --exclude=./.trial -cf - . | tar -C \"$2\" -xf -",
            "copy", RepoPaths.Root, copy]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        return Path.Combine(copy, "scripts", "install.sh");
    }

    /// <summary>Every path under the root with its type, mode, size, mtime and content hash: any change shows.</summary>
    private static List<string> Snapshot(string root) =>
        Directory.EnumerateFileSystemEntries(root, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal).Select(p =>
        {
            var info = new FileInfo(p);
            var link = info.LinkTarget;
            var kind = link is not null ? "link->" + link : Directory.Exists(p) ? "dir" : "file";
            var hash = kind == "file" ? Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(p))) : "";
            var mode = link is null ? File.GetUnixFileMode(p).ToString() : ""; // a link into the real / dangles here
            var size = kind == "file" ? info.Length : 0;
            var mtime = kind == "file" ? info.LastWriteTimeUtc.Ticks : Directory.GetLastWriteTimeUtc(p).Ticks;
            return $"{Path.GetRelativePath(root, p)} {kind} {mode} {size} {mtime} {hash}";
        }).ToList();

    [Test]
    public async Task TwiceInARowChangesNothingTheSecondTimeAndKeepsTheOperatorsConfig()
    {
        using var tmp = new TempDirectory();
        var root = tmp.Combine("root");
        var script = await CopyOfTheRepository(tmp);
        var key = JournalistKey.Generate().PublicKey.ToString();
        // A build runs code from the sources and from NuGet packages: one such piece here records who ran it.
        var builders = PlantBuildHook(tmp, script);

        var first = await ChildProcess.RunAsync("bash", [script, "--root", root, "--no-deps", "--nuget-packages", NuGetPackagesCopy.Path, "--recipient", key], TimeSpan.FromMinutes(8));
        Assert.That(first.ExitCode, Is.EqualTo(0), first.ToString());
        TestContext.Out.WriteLine(first.Stdout);
        AssertBuiltUnprivileged(builders, script);

        string P(string p) => Path.Combine(root, p.TrimStart('/'));
        Assert.Multiple(() =>
        {
            Assert.That(File.Exists(P("/opt/oniondrop/oniondrop.dll")), Is.True);
            Assert.That(File.GetUnixFileMode(P("/var/lib/oniondrop")), Is.EqualTo((UnixFileMode)Convert.ToInt32("700", 8)));
            Assert.That(File.GetUnixFileMode(P("/etc/oniondrop/oniondrop.json")), Is.EqualTo((UnixFileMode)Convert.ToInt32("640", 8)));
            Assert.That(File.ReadAllText(P("/etc/systemd/system/oniondrop.service")), Is.EqualTo(File.ReadAllText(Path.Combine(RepoPaths.Root, "scripts", "oniondrop.service"))));
            Assert.That(new FileInfo(P("/usr/local/bin/oniondrop")).LinkTarget, Is.EqualTo("/opt/oniondrop/oniondrop"));
        });

        // The written config holds the recipient, and the daemon's own loading and validation accept it.
        var config = P("/etc/oniondrop/oniondrop.json");
        var options = OnionDropConfiguration.Load(config, new(), new System.Collections.Hashtable()).Options();
        Assert.That(options.Recipients, Is.EqualTo(new[] { key }));
        Assert.That(new OnionDropOptionsValidator().Validate(null, options).Succeeded, Is.True);

        // Journalists' SSH keys: a file of root's with the examples commented out, and sshd pointed at it for the
        // daemon's account only (checked by Debian's sshd itself, reading the drop-in as /etc/ssh/sshd_config does).
        var keys = P("/etc/oniondrop/authorized_keys");
        Assert.That(File.GetUnixFileMode(keys), Is.EqualTo((UnixFileMode)Convert.ToInt32("640", 8)));
        Assert.That(File.ReadAllLines(keys).Where(l => l.Length > 0), Has.All.StartsWith("#").And.Some.Contains("command=\"/usr/local/bin/oniondrop pull --stdio"));
        var sshdMain = tmp.Combine("sshd_config");
        var hostKey = await ChildProcess.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", tmp.Combine("host_key")]);
        Assert.That(hostKey.ExitCode, Is.EqualTo(0), hostKey.ToString());
        await File.WriteAllTextAsync(sshdMain, $"Include {P("/etc/ssh/sshd_config.d")}/*.conf\nHostKey {tmp.Combine("host_key")}\nX11Forwarding yes\n");
        Directory.CreateDirectory("/run/sshd");
        async Task<string> Effective(string user)
        {
            var r = await ChildProcess.RunAsync("/usr/sbin/sshd", ["-T", "-f", sshdMain, "-C", $"user={user},host=localhost,addr=127.0.0.1"]);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
            return r.Stdout;
        }
        var daemonUser = await Effective("oniondrop");
        Assert.That(daemonUser, Does.Contain("authorizedkeysfile /etc/oniondrop/authorized_keys\n").And.Contain("permittty no\n")
            .And.Contain("x11forwarding no\n").And.Contain("allowtcpforwarding no\n").And.Contain("authenticationmethods publickey\n")
            .And.Contain("permituserrc no\n").And.Contain("disableforwarding yes\n").And.Contain("clientaliveinterval 15\n"));
        Assert.That(await Effective("alice"), Does.Contain("authorizedkeysfile .ssh/authorized_keys").And.Contain("x11forwarding yes\n"),
            "the drop-in's Match block must end with its file");

        // The installed program runs.
        var help = await ChildProcess.RunAsync(P("/opt/oniondrop/oniondrop"), ["status", "--help"]);
        Assert.That(help.ExitCode, Is.EqualTo(0), help.ToString());

        // It ends with what is left to do: the journalists' SSH keys (the line to add), starting it, the address.
        const string keyLine = "restrict,command=\"/usr/local/bin/oniondrop pull --stdio --config /etc/oniondrop/oniondrop.json --as NAME\" ssh-ed25519 AAAA... NAME";
        Assert.That(first.Stdout, Does.Contain("next: for each journalist who fetches, add their SSH key to").And.Contain(keyLine)
            .And.Contain("start: systemctl enable --now oniondrop").And.Contain("onion address: shown by 'oniondrop status'"));

        // The operator edits the config, adds a journalist's key, the data directory fills and tor has made the
        // address; a rerun (another key given) leaves all of it alone, and shows the address.
        await File.AppendAllTextAsync(config, "// the operator's own note\n");
        await File.AppendAllTextAsync(keys, keyLine.Replace("NAME", "alice") + "\n");
        await File.WriteAllTextAsync(P("/var/lib/oniondrop/catalog.db"), "data");
        Directory.CreateDirectory(P("/var/lib/oniondrop/tor/onion-service"));
        await File.WriteAllTextAsync(P("/var/lib/oniondrop/tor/onion-service/hostname"), "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion\n");
        var before = Snapshot(root);
        var second = await ChildProcess.RunAsync("bash", [script, "--root", root, "--no-deps", "--nuget-packages", NuGetPackagesCopy.Path, "--recipient", JournalistKey.Generate().PublicKey.ToString()], TimeSpan.FromMinutes(8));
        Assert.That(second.ExitCode, Is.EqualTo(0), second.ToString());
        TestContext.Out.WriteLine(second.Stdout);
        Assert.That(Snapshot(root), Is.EqualTo(before), "the second run changed something");
        Assert.That(second.Stdout, Does.Contain("oniondrop.json: exists, not changed").And.Contain("0 files installed")
            .And.Contain("onion address (for sources): abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvwx.onion")
            .And.Not.Contain("next: for each journalist"));

        // --uninstall takes away what install.sh put in place and keeps what holds submissions, keys and choices.
        var removal = await ChildProcess.RunAsync("bash", [script, "--root", root, "--uninstall"]);
        Assert.That(removal.ExitCode, Is.EqualTo(0), removal.ToString());
        TestContext.Out.WriteLine(removal.Stdout);
        Assert.Multiple(() =>
        {
            foreach (var gone in new[] { "/opt/oniondrop", "/usr/local/bin/oniondrop", "/etc/systemd/system/oniondrop.service", "/etc/ssh/sshd_config.d/oniondrop.conf", "/var/cache/oniondrop-build" })
                Assert.That(Path.Exists(P(gone)) || new FileInfo(P(gone)).LinkTarget is not null, Is.False, gone);
            Assert.That(File.ReadAllText(P("/var/lib/oniondrop/catalog.db")), Is.EqualTo("data"));
            Assert.That(File.ReadAllText(config), Does.EndWith("// the operator's own note\n"));
            Assert.That(File.ReadAllText(keys), Does.Contain("--as alice"));
            Assert.That(removal.Stdout, Does.Contain("kept: " + P("/var/lib/oniondrop")));
        });
        var again = await ChildProcess.RunAsync("bash", [script, "--root", root, "--uninstall"]);
        Assert.That(again.ExitCode, Is.EqualTo(0), again.ToString());
    }

    /// <summary>
    /// A Directory.Build.targets in the copy of the sources, run by every project's build (as an MSBuild target or
    /// a package's would be), appending the builder's uid to a file anyone may write. Returns that file.
    /// </summary>
    internal static string PlantBuildHook(TempDirectory tmp, string script)
    {
        File.SetUnixFileMode(tmp.Path, (UnixFileMode)Convert.ToInt32("711", 8)); // the builder reaches the file, lists nothing
        var builders = tmp.Combine("builders");
        File.WriteAllText(builders, "");
        File.SetUnixFileMode(builders, (UnixFileMode)Convert.ToInt32("666", 8));
        var sources = Path.GetDirectoryName(Path.GetDirectoryName(script))!;
        File.WriteAllText(Path.Combine(sources, "Directory.Build.targets"),
            $"<Project><Target Name=\"RecordBuilder\" BeforeTargets=\"CoreCompile\"><Exec Command=\"id -u &gt;&gt; {builders}\" /></Target></Project>\n");
        return builders;
    }

    /// <summary>The build ran (every project), never as root, and left nothing in the checkout it was given.</summary>
    internal static void AssertBuiltUnprivileged(string builders, string script)
    {
        var uids = File.ReadAllLines(builders).Where(l => l.Length > 0).ToList();
        TestContext.Out.WriteLine($"built by uid(s) {string.Join(' ', uids.Distinct())}");
        Assert.That(uids, Is.Not.Empty, "the planted target ran");
        Assert.That(uids, Has.None.EqualTo("0"), "the build ran as root: a package's code would have run as root too");
        var sources = Path.GetDirectoryName(Path.GetDirectoryName(script))!;
        Assert.That(Directory.GetDirectories(sources, "obj", SearchOption.AllDirectories), Is.Empty, "the build wrote into the checkout");
        Assert.That(BuildProcessesOfOthersThanRoot(), Is.Empty, "a build process (the compiler server, say) outlived the install");
    }

    /// <summary>Running MSBuild or compiler-server processes of any user but root (the tests' own builds run as root).</summary>
    private static List<string> BuildProcessesOfOthersThanRoot()
    {
        var found = new List<string>();
        foreach (var pid in Directory.EnumerateDirectories("/proc").Select(d => int.TryParse(Path.GetFileName(d), out var n) ? n : 0).Where(n => n > 0))
            try
            {
                var uid = PosixProcess.Uid(pid);
                var command = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
                if (uid != 0 && (command.Contains("VBCSCompiler", StringComparison.Ordinal) || command.Contains("MSBuild.dll", StringComparison.Ordinal)))
                    found.Add($"uid {uid}: {command}");
            }
            catch (IOException) { } // ended meanwhile
        return found;
    }

    [Test]
    public async Task ARealInstallNeedsRootAndBadKeysAreRefused()
    {
        var r = await ChildProcess.RunAsync("bash", [Path.Combine(RepoPaths.Root, "scripts", "install.sh"), "--root", "/tmp/unused", "--no-deps", "--recipient", "not-a-key"]);
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Stderr, Does.Contain("does not look like a public key"));
        Assert.That(Directory.Exists("/tmp/unused"), Is.False);
    }

    [Test]
    public async Task AKeyGivenTwiceIsRefusedBeforeAnythingIsInstalled()
    {
        // The daemon refuses a config listing one key twice; the installer must not write one.
        var key = JournalistKey.Generate().PublicKey.ToString();
        var r = await ChildProcess.RunAsync("bash", [Path.Combine(RepoPaths.Root, "scripts", "install.sh"), "--root", "/tmp/unused", "--no-deps", "--recipient", key, "--recipient", key]);
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Stderr, Does.Contain("given twice"));
        Assert.That(Directory.Exists("/tmp/unused"), Is.False);
    }
}
