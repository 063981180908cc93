using System.Text.Json.Nodes;
using OnionDrop.Daemon.Status;
using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>The built `oniondrop serve` and `status` as a user runs them: help, exit codes, one-line errors.</summary>
public class CommandLineTests
{
    private TempDirectory dir = null!;

    [SetUp] public void SetUp() => dir = new TempDirectory();
    [TearDown] public void TearDown() => dir.Dispose();


    /// <summary>Runs the CLI with a clean ONIONDROP_* environment plus <paramref name="env"/>, as <paramref name="uid"/> if given.</summary>
    private static Task<ProcessResult> Run(string[] args, Dictionary<string, string>? env = null, int? uid = null)
    {
        var psi = uid is { } u
            ? ChildProcess.StartInfo("setpriv", [$"--reuid={u}", $"--regid={u}", "--clear-groups", "--inh-caps=-all", "--",
                "env", "HOME=/nonexistent", "dotnet", Oniondrop.Dll, .. args])
            : Oniondrop.StartInfo(args);
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("ONIONDROP_", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(name);
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        return ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(1));
    }

    private static void AssertOneLineError(ProcessResult r, int exitCode, string command, string mentions)
    {
        Assert.That(r.ExitCode, Is.EqualTo(exitCode), r.ToString());
        var lines = r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), "exactly one line on stderr\n" + r);
        Assert.That(lines[0], Does.StartWith($"oniondrop {command}: ").And.Contain(mentions));
        Assert.That(r.Stderr + r.Stdout, Does.Not.Contain("   at ").And.Not.Contain("Exception"), "no stack trace");
    }

    [TestCase("serve", "--data-dir", "--recipient", "--listen", "--tor", "--config", "--check")]
    [TestCase("status", "--json", "--data-dir", "Exit codes")]
    public async Task HelpDescribesEveryOption(string command, params string[] mentions)
    {
        var r = await Run([command, "--help"]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        foreach (var m in mentions) Assert.That(r.Stdout, Does.Contain(m));
    }

    [Test]
    public async Task RootHelpListsEveryCommand()
    {
        var r = await Run(["--help"]);
        Assert.That(r.ExitCode, Is.EqualTo(0));
        foreach (var c in new[] { "serve", "keygen", "open", "pull", "fetch", "status" }) Assert.That(r.Stdout, Does.Contain(c));
    }

    [Test]
    public async Task AnUnknownOptionOrBadTorModeIsAUsageError()
    {
        // Like a bad configuration: one line naming the mistake, exit 2 (not the whole help).
        AssertOneLineError(await Run(["serve", "--no-such-flag"]), 2, "serve", "--no-such-flag");
        AssertOneLineError(await Run(["serve", "--tor", "lunch", "--data-dir", dir.Path]), 2, "serve", "lunch");
        AssertOneLineError(await Run(["open", "-o", dir.Path]), 2, "open", "'--key' is required");
        var unknown = await Run(["frobnicate"]);
        Assert.That(unknown.ExitCode, Is.EqualTo(2), unknown.ToString());
        Assert.That(unknown.Stderr.TrimEnd(), Does.StartWith("oniondrop: ").And.Contain("'frobnicate'").And.Not.Contain("\n"), unknown.ToString());
        Assert.That(unknown.Stdout, Is.Empty, "no help dumped");
    }

    [Test]
    public async Task ServeWithoutRecipientsFailsFast() =>
        AssertOneLineError(await Run(["serve", "--data-dir", dir.Path, "--tor", "none"]), 2, "serve", "Recipients: at least one");

    [Test]
    public async Task ServeWithAMistypedKeyNamesTheEntry()
    {
        var good = JournalistKey.Generate().PublicKey.ToString();
        var typo = good[..20] + (good[20] == 'a' ? 'b' : 'a') + good[21..];
        var r = await Run(["serve", "--data-dir", dir.Path, "--tor", "none", "--recipient", good, "--recipient", typo]);
        AssertOneLineError(r, 2, "serve", "Recipients[1]");
        Assert.That(Directory.EnumerateFileSystemEntries(dir.Path), Is.Empty, "nothing started, nothing written");
    }

    [Test]
    public async Task ServeRefusesAPublicListenAddress()
    {
        var key = JournalistKey.Generate().PublicKey.ToString();
        AssertOneLineError(await Run(["serve", "--data-dir", dir.Path, "--tor", "none", "--recipient", key, "--listen", "0.0.0.0:8080"]), 2, "serve", "0.0.0.0");
    }

    [Test]
    public async Task ServeNamesABadConfigFileEntryAndABadVariable()
    {
        var file = dir.Combine("c.json");
        await File.WriteAllTextAsync(file, """{ "OnionDrop": { "Recipients": [ "odpk1nonsense" ] } }""");
        AssertOneLineError(await Run(["serve", "--config", file, "--tor", "none", "--data-dir", dir.Combine("data")]), 2, "serve", "Recipients[0] \"odpk1nonsense\"");
        AssertOneLineError(await Run(["serve", "--config", dir.Combine("none.json")]), 2, "serve", "none.json not found");
        AssertOneLineError(await Run(["serve", "--data-dir", dir.Path], new() { ["ONIONDROP_DATADIR"] = "/x", ["ONIONDROP_RECIPIENT"] = "k" }), 2, "serve", "ONIONDROP_RECIPIENT is not a setting");
    }

    [Test]
    public async Task ServeStopsWithExit2OnBadRetentionOrTorSettingsBeforeStartingAnything()
    {
        // Found only when the store opened or tor started, these exited 1: systemd restarted the daemon every few
        // seconds instead of leaving it stopped (RestartPreventExitStatus=2) with the one line that says why.
        var key = JournalistKey.Generate().PublicKey.ToString();
        var data = dir.Combine("data");
        AssertOneLineError(await Run(["serve", "--data-dir", data, "--tor", "none", "--recipient", key], new() { ["ONIONDROP_RETENTION__DELETE_AFTER"] = "All" }),
            2, "serve", "Retention: DeleteAfter=All needs the list of Journalists");
        AssertOneLineError(await Run(["serve", "--data-dir", data, "--tor", "none", "--recipient", key], new() { ["ONIONDROP_RETENTION__CHECK_INTERVAL"] = "-00:00:01" }),
            2, "serve", "Retention:CheckInterval must be between");
        AssertOneLineError(await Run(["serve", "--data-dir", data, "--tor", "launch", "--recipient", key], new() { ["ONIONDROP_TOR_EXTRA_CONFIG"] = "ControlPort 9051" }),
            2, "serve", "TorExtraConfig line 1");
        Assert.That(Directory.Exists(data), Is.False, "nothing started, nothing written");
    }

    [Test]
    public async Task ServeWithTheSystemTorStopsWithExit2OnAWebSocketPathTorCannotTakeBeforeMakingAnything()
    {
        // ADD_ONION refused it once tor was asked: exit 1, and systemd restarted the daemon every few seconds.
        var key = JournalistKey.Generate().PublicKey.ToString();
        var data = dir.Combine("data");
        var socketDirectory = dir.Combine("onion drop");
        var r = await Run(["serve", "--data-dir", data, "--tor", "system", "--recipient", key], new()
        {
            ["ONIONDROP_WEB_SOCKET_DIRECTORY"] = socketDirectory, ["ONIONDROP_SYSTEM_TOR_CONTROL_SOCKET"] = dir.Combine("no-tor-here"),
        });
        AssertOneLineError(r, 2, "serve", $"bad configuration: WebSocketDirectory \"{socketDirectory}\" holds a space");
        Assert.That(Directory.Exists(data) || Directory.Exists(socketDirectory), Is.False, "nothing started, nothing made");
    }

    [Test]
    public async Task ServeStopsWithExit2InOneLineWhenTorIsMissingOrRefusesItsTorrc()
    {
        // Both exited 1, the host's "Hosting failed to start" and a stack trace with them: under Restart=on-failure,
        // a restart every few seconds for a mistake only the operator can fix.
        var key = JournalistKey.Generate().PublicKey.ToString();
        var data = dir.Combine("data");
        AssertOneLineError(await Run(["serve", "--data-dir", data, "--tor", "launch", "--recipient", key], new() { ["ONIONDROP_TOR_PATH"] = "/nonexistent/tor" }),
            2, "serve", "bad configuration: TorPath: tor not found ('/nonexistent/tor'");
        Assert.That(Directory.Exists(data), Is.False, "nothing started, nothing written");

        var bogus = await Run(["serve", "--data-dir", data, "--tor", "launch", "--recipient", key], new() { ["ONIONDROP_TOR_EXTRA_CONFIG"] = "Bogus 1" });
        AssertOneLineError(bogus, 2, "serve", "bad configuration: tor exited with code 1 before it was ready: ");
        Assert.That(bogus.Stderr, Does.Contain("Unknown option 'Bogus'"), "in tor's own words");
        Assert.That(bogus.Stdout, Does.Not.Contain("Hosting failed to start"));
    }

    [Test]
    public async Task ServeCheckSaysWhetherTheDaemonWouldAcceptItsConfigurationAndStartsNothing()
    {
        // Before an upgrade's restart: a config the new program refuses (a key listed twice, a torrc template without a
        // line it now requires) is said with exit 2 while the running daemon still serves, not after the restart.
        var key = JournalistKey.Generate().PublicKey.ToString();
        var data = dir.Combine("data");
        var template = dir.Combine("torrc.template");
        File.WriteAllLines(template, File.ReadAllLines(Path.Combine(RepoPaths.Root, "torrc.template")).Where(l => !l.StartsWith("HeartbeatPeriod")));
        var listen = $"127.0.0.1:{FreePort.Next()}";
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPEndPoint.Parse(listen)); // the running daemon's
        taken.Start();

        var fine = await Run(["serve", "--check", "--data-dir", data, "--tor", "launch", "--recipient", key, "--listen", listen]);
        Assert.That(fine.ExitCode, Is.Zero, fine.ToString());
        Assert.That(fine.Stdout.Trim(), Is.EqualTo("oniondrop serve: the configuration is fine"), fine.ToString());
        Assert.That(Directory.GetFileSystemEntries(data), Is.Empty, "nothing started: the data directory is made (0700, to see that it can be) and left empty");

        AssertOneLineError(await Run(["serve", "--check", "--data-dir", data, "--tor", "launch", "--recipient", key, "--recipient", key]),
            2, "serve", "is the same key as Recipients[0]");
        AssertOneLineError(await Run(["serve", "--check", "--data-dir", data, "--tor", "launch", "--recipient", key], new() { ["ONIONDROP_TORRC_TEMPLATE"] = template }),
            2, "serve", "lacks the required line \"HeartbeatPeriod 0\"");
        Assert.That(Directory.GetFileSystemEntries(data), Is.Empty);
    }

    [Test]
    public async Task ServeStopsWithExit2InOneLineOnADamagedOnionServiceKey()
    {
        // It exited 1, and systemd started it again every few seconds with the same line: only the operator can put
        // the key back (from a backup) or choose a new address.
        var key = JournalistKey.Generate().PublicKey.ToString();
        var data = dir.Combine("data");
        var service = Path.Combine(data, "tor", "onion-service");
        Directory.CreateDirectory(service, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        const string address = "sp3k262uwy4r2k3ycr5awluarykdpag6a7y33jxop4cs2lu5uz5sseqd.onion";
        File.WriteAllText(Path.Combine(service, "hostname"), address + "\n");
        File.WriteAllBytes(Path.Combine(service, "hs_ed25519_secret_key"), new byte[40]);

        var r = await Run(["serve", "--data-dir", data, "--tor", "launch", "--recipient", key]);
        AssertOneLineError(r, 2, "serve", $"the onion service key {Path.Combine(service, "hs_ed25519_secret_key")} is damaged");
        Assert.That(r.Stderr, Does.Contain(address).And.Contain("Put the key back"));
    }

    [Test]
    public async Task ServeRefusesADataDirectoryOfAnotherUserBeforeMakingAnythingInIt()
    {
        // root serving the service's directory left root-owned files there (tor's key, torrc, status.json, even
        // catalog.db when the start was refused), and the service's own daemon could then never start.
        var key = JournalistKey.Generate().PublicKey.ToString();
        var data = dir.Combine("data");
        Directory.CreateDirectory(data);
        Assert.That((await ChildProcess.RunAsync("chown", ["65534:65534", data])).ExitCode, Is.Zero);
        var r = await Run(["serve", "--data-dir", data, "--tor", "none", "--recipient", key]);
        AssertOneLineError(r, 2, "serve", $"DataDir {data} belongs to uid 65534 (nobody), not to root: run serve as that user (e.g. sudo -u nobody oniondrop serve");
        Assert.That(Directory.EnumerateFileSystemEntries(data), Is.Empty, "nothing made in it");
    }

    [Test]
    public async Task ServeAsTheServiceUserOnADataDirectoryRestoredAsRootSaysToGiveItBack()
    {
        // A data directory put back from a backup by root (cp -r, tar --numeric-owner on another machine) is root's:
        // the service's daemon must not be told to run as root ("sudo -u root oniondrop serve"), but to take it back.
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101);   // root's 0755: nobody may enter, not write
        var data = dir.Combine("data");
        Directory.CreateDirectory(data);
        var key = JournalistKey.Generate().PublicKey.ToString();
        var r = await Run(["serve", "--data-dir", data, "--tor", "none", "--recipient", key], uid: 65534);
        AssertOneLineError(r, 2, "serve", $"DataDir {data} belongs to uid 0 (root), not to nobody");
        Assert.That(r.Stderr, Does.Contain($"sudo chown -R nobody: {data}").And.Not.Contain("sudo -u root"));
    }

    [TestCase("catalog.db", false)]
    [TestCase("tor", true)]
    public async Task ServeAsTheServiceUserOnADataDirectoryWithAPartRestoredAsRootSaysToGiveItBack(string part, bool isFolder)
    {
        // The directory is the service's own, but a part of it root's (a restore that chowned the directory only): the
        // daemon failed on it at every start with exit 1, and systemd restarted it every 5 s for ever.
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101);   // root's 0755: nobody may enter, not write
        var data = dir.Combine("data");
        Directory.CreateDirectory(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var path = Path.Combine(data, part);
        if (isFolder) Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        else File.WriteAllBytes(path, []);
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | (isFolder ? UnixFileMode.UserExecute : 0));
        Assert.That((await ChildProcess.RunAsync("chown", ["65534:65534", data])).ExitCode, Is.Zero);
        var key = JournalistKey.Generate().PublicKey.ToString();
        var r = await Run(["serve", "--data-dir", data, "--tor", "none", "--recipient", key], uid: 65534);
        AssertOneLineError(r, 2, "serve", $"{path} belongs to uid 0 (root), not to nobody");
        Assert.That(r.Stderr, Does.Contain($"sudo chown -R nobody: {data}"));
    }

    [Test]
    public async Task ServeAsAUserWhoCannotMakeTheDataDirectoryExits2NamingItTheUserAndTheFix()
    {
        // A bare "Access to the path ... is denied" with exit 1, which systemd restarts again and again.
        File.SetUnixFileMode(dir.Path, (UnixFileMode)0b111_101_101);   // root's 0755: nobody may enter, not write
        var key = JournalistKey.Generate().PublicKey.ToString();
        var data = dir.Combine("data");
        var r = await Run(["serve", "--data-dir", data, "--tor", "none", "--recipient", key], uid: 65534);
        AssertOneLineError(r, 2, "serve", $"DataDir {data} cannot be made or written by the user nobody (uid 65534)");
        Assert.That(r.Stderr, Does.Contain($"sudo install -d -m 0700 -o nobody {data}"));
        Assert.That(Directory.Exists(data), Is.False);
    }

    [Test]
    public async Task ServeRefusesALogLevelThatIsNoLevelWithExit2BeforeMakingAnything()
    {
        var file = dir.Combine("c.json");
        await File.WriteAllTextAsync(file, """{ "Logging": { "LogLevel": { "Default": "Verbose" } } }""");
        var data = dir.Combine("data");
        var key = JournalistKey.Generate().PublicKey.ToString();
        AssertOneLineError(await Run(["serve", "--config", file, "--data-dir", data, "--tor", "none", "--recipient", key]), 2, "serve", "Logging:LogLevel:Default");
        Assert.That(Directory.Exists(data), Is.False, "nothing started, nothing written");
    }

    /// <summary>A status.json as a daemon that is still alive (this test's own process) last wrote it five minutes ago.</summary>
    private static void WriteStaleStatus(string dataDir) => File.WriteAllText(Path.Combine(dataDir, DaemonStatus.FileName), new DaemonStatus
    {
        State = "running", Pid = Environment.ProcessId, StartedAt = DateTimeOffset.UtcNow.AddHours(-1), UpdatedAt = DateTimeOffset.UtcNow.AddMinutes(-5),
        IntervalSeconds = 5, TorMode = "none", Disk = new DiskStatus(dataDir, 50L << 30, 100L << 30) { AsOf = DateTimeOffset.UtcNow.AddHours(-1) },
    }.ToJson());

    [Test]
    public async Task StatusOfALiveDaemonWhoseFileIsStaleSaysItRunsAndLooksAtTheDisk()
    {
        // A full disk: the daemon (alive) could not write status.json, and status said "daemon NOT running ... hung?".
        WriteStaleStatus(dir.Path);
        var r = await Run(["status", "--data-dir", dir.Path]);
        AssertOneLineError(r, 2, "status", $"daemon pid {Environment.ProcessId} is running but not writing its status file");
        Assert.That(r.Stdout, Does.Not.Contain("NOT running"), r.ToString());

        await using var full = await SmallTmpfs.MountAsync(16);
        WriteStaleStatus(full.Path);
        var low = await Run(["status", "--data-dir", full.Path]);
        AssertOneLineError(low, 5, "status", $"low disk: ");
        Assert.That(low.Stderr, Does.Contain($"under {full.Path}").And.Contain("running but not writing its status file"), low.ToString());
    }

    [Test]
    public async Task StatusWithoutADaemonSaysSoAndExits2()
    {
        var r = await Run(["status", "--data-dir", dir.Path]);
        Assert.That(r.ExitCode, Is.EqualTo(2), r.ToString());
        Assert.That(r.Stdout, Does.Contain("NOT HEALTHY"));
        AssertOneLineError(r, 2, "status", "no " + Path.Combine(dir.Path, "status.json"));

        var j = await Run(["status", "--json", "--data-dir", dir.Path]);
        Assert.That(j.ExitCode, Is.EqualTo(2));
        var health = JsonNode.Parse(j.Stdout)!["health"]!;
        Assert.That((bool)health["healthy"]!, Is.False);
        Assert.That((int)health["code"]!, Is.EqualTo(2));
    }

    [Test]
    public async Task StatusOfAGarbledFileExits1()
    {
        await File.WriteAllTextAsync(dir.Combine("status.json"), "{ not json");
        AssertOneLineError(await Run(["status", "--data-dir", dir.Path]), 1, "status", "cannot read");
    }

    [Test]
    public async Task StatusTakesTheDataDirectoryFromTheEnvironmentLikeServe()
    {
        var r = await Run(["status"], new() { ["ONIONDROP_DATA_DIR"] = dir.Path });
        Assert.That(r.Stderr, Does.Contain(Path.Combine(dir.Path, "status.json")));
    }
}
