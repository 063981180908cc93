using System.Globalization;
using System.Text.RegularExpressions;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>
/// `scripts/install.sh --tor system`: the unit's drop-in for Debian's tor@default (scripts/oniondrop-system-tor.conf),
/// the config and tor's AppArmor rule. The daemon's side is shown with a real tor as debian-tor in
/// OnionDrop.Daemon.Tests' SystemTorTests.
/// </summary>
public class SystemTorInstallTests
{
    private static string Scripts => Path.Combine(RepoPaths.Root, "scripts");

    private static async Task<double> ExposureAsync(params string[] args)
    {
        var r = await ChildProcess.RunAsync("systemd-analyze", ["security", "--offline=true", "--no-pager", .. args]);
        Assert.That(r.Stderr, Does.Not.Contain("Unknown key").And.Not.Contain("Failed to parse").And.Not.Contain("ignoring"), r.Stderr);
        var m = Regex.Match(r.Stdout, @"Overall exposure level for oniondrop\.service: (\d+\.\d+)");
        Assert.That(m.Success, Is.True, "no exposure line\n" + r);
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [Test]
    public async Task TheDropInKeepsTheUnitsExposureAtMostWhatItWas()
    {
        using var tmp = new TempDirectory();
        var system = Path.Combine(tmp.Path, "etc", "systemd", "system");
        Directory.CreateDirectory(Path.Combine(system, "oniondrop.service.d"));
        File.Copy(Path.Combine(Scripts, "oniondrop.service"), Path.Combine(system, "oniondrop.service"));
        var without = await ExposureAsync($"--root={tmp.Path}", "oniondrop.service");
        File.Copy(Path.Combine(Scripts, "oniondrop-system-tor.conf"), Path.Combine(system, "oniondrop.service.d", "system-tor.conf"));
        var with = await ExposureAsync($"--root={tmp.Path}", "oniondrop.service");
        TestContext.Out.WriteLine($"systemd-analyze security: {without} (launch) -> {with} (system tor drop-in)");
        Assert.That(with, Is.LessThanOrEqualTo(without), "the drop-in must not widen the sandbox overall");
        Assert.That(with, Is.Not.EqualTo(without), "systemd read the drop-in");
    }

    /// <summary>
    /// Debian's own parser compiles tor's profile (system_tor, from the tor package) with the local file install.sh
    /// wrote, and the rule lands inside profile system_tor. The kernel here has no AppArmor, so the policy is
    /// compiled (-Q: not loaded) and not enforced.
    /// </summary>
    private static async Task TorsAppArmorProfileCompilesWith(string local, TempDirectory tmp)
    {
        Assert.That(File.Exists("/etc/apparmor.d/system_tor"), Is.True, "tor's AppArmor profile (Debian's tor package)");
        var copy = tmp.Combine("apparmor.d");
        var r = await ChildProcess.RunAsync("cp", ["-a", "/etc/apparmor.d", copy]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        File.Copy(local, Path.Combine(copy, "local", "system_tor"), overwrite: true);
        var profile = Path.Combine(copy, "system_tor");
        var compile = await ChildProcess.RunAsync("apparmor_parser", ["--base", copy, "-Q", "-K", "--skip-cache", profile]);
        Assert.That(compile.ExitCode, Is.EqualTo(0), "apparmor_parser (Debian's apparmor package, scripts/setup-deps)\n" + compile);
        var flat = await ChildProcess.RunAsync("apparmor_parser", ["--base", copy, "-p", profile]);
        var lines = flat.Stdout.Split('\n');
        var start = Array.FindIndex(lines, l => l.TrimStart().StartsWith("profile system_tor"));
        var rule = Array.FindIndex(lines, l => l.Trim() == "/{,var/}run/oniondrop/web.sock rw,");
        Assert.That(start, Is.GreaterThanOrEqualTo(0), flat.ToString());
        Assert.That(rule, Is.GreaterThan(start), "the rule is inside profile system_tor");
        Assert.That(lines.Skip(start).Take(rule - start).Count(l => l.Trim() == "}"), Is.Zero, "and not after its closing brace");
    }

    [Test, Category("EndToEnd")]
    public async Task InstallWithSystemTorWritesTheSettingsTheDropInAndTorsAppArmorRuleOnce()
    {
        using var tmp = new TempDirectory();
        var root = tmp.Combine("root");
        var script = await InstallScriptTests.CopyOfTheRepository(tmp);
        var key = JournalistKey.Generate().PublicKey.ToString();
        string P(string p) => Path.Combine(root, p.TrimStart('/'));

        var first = await ChildProcess.RunAsync("bash", [script, "--root", root, "--no-deps", "--nuget-packages", NuGetPackagesCopy.Path, "--tor", "system", "--recipient", key], TimeSpan.FromMinutes(8));
        Assert.That(first.ExitCode, Is.EqualTo(0), first.ToString());
        TestContext.Out.WriteLine(first.Stdout);

        var options = OnionDropConfiguration.Load(P("/etc/oniondrop/oniondrop.json"), new(), new System.Collections.Hashtable()).Options();
        Assert.Multiple(() =>
        {
            Assert.That(options.Tor, Is.EqualTo(TorMode.System));
            Assert.That(options.WebSocketDirectory, Is.EqualTo("/run/oniondrop"));
            Assert.That(options.WebSocketGroup, Is.EqualTo("debian-tor"));
            Assert.That(options.DataDir, Is.EqualTo("/var/lib/oniondrop"));
            Assert.That(new OnionDropOptionsValidator().Validate(null, options).Failures, Is.Null);
            Assert.That(File.ReadAllText(P("/etc/systemd/system/oniondrop.service.d/system-tor.conf")),
                Is.EqualTo(File.ReadAllText(Path.Combine(Scripts, "oniondrop-system-tor.conf"))));
        });
        const string rule = "  /{,var/}run/oniondrop/web.sock rw,";
        Assert.That(File.ReadAllLines(P("/etc/apparmor.d/local/system_tor")), Does.Contain(rule));
        await TorsAppArmorProfileCompilesWith(P("/etc/apparmor.d/local/system_tor"), tmp);

        // Again, with another group: the drop-in follows it, the operator's config and the AppArmor rule stay as they are.
        var second = await ChildProcess.RunAsync("bash", [script, "--root", root, "--no-deps", "--nuget-packages", NuGetPackagesCopy.Path, "--tor", "system", "--tor-group", "tor-users"], TimeSpan.FromMinutes(8));
        Assert.That(second.ExitCode, Is.EqualTo(0), second.ToString());
        Assert.That(File.ReadAllLines(P("/etc/apparmor.d/local/system_tor")).Count(l => l == rule), Is.EqualTo(1));
        Assert.That(File.ReadAllLines(P("/etc/systemd/system/oniondrop.service.d/system-tor.conf")), Does.Contain("SupplementaryGroups=tor-users")
            .And.Contain("ExecStartPre=+/usr/bin/install -d -m 2710 -o oniondrop -g tor-users /run/oniondrop"));
        Assert.That(second.Stdout, Does.Contain("oniondrop.json: exists, not changed").And.Contain("allows /run/oniondrop/web.sock already"));

        var bad = await ChildProcess.RunAsync("bash", [script, "--root", root, "--no-deps", "--tor", "sometimes"]);
        Assert.That(bad.ExitCode, Is.EqualTo(2));
        Assert.That(bad.Stderr, Does.Contain("--tor must be launch or system"));
    }
}
