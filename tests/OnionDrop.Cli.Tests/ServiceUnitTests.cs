using System.Globalization;
using System.Text.RegularExpressions;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>scripts/oniondrop.service, as systemd itself rates it.</summary>
public class ServiceUnitTests
{
    private static string Unit => Path.Combine(RepoPaths.Root, "scripts", "oniondrop.service");

    [Test]
    public async Task SystemdRatesTheUnitExposureAtMost2()
    {
        var r = await ChildProcess.RunAsync("systemd-analyze", ["security", "--offline=true", "--no-pager", Unit]);
        var m = Regex.Match(r.Stdout, @"Overall exposure level for oniondrop\.service: (\d+\.\d+)");
        Assert.That(m.Success, Is.True, "no exposure line\n" + r);
        var exposure = double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        TestContext.Out.WriteLine($"systemd-analyze security: exposure {exposure} (target <= 2.0)");
        Assert.That(exposure, Is.LessThanOrEqualTo(2.0), r.Stdout);
    }

    [Test]
    public async Task SystemdAcceptsEveryLine()
    {
        // Unknown or misspelt settings are ignored by systemd with only a warning: make them an error here.
        var r = await ChildProcess.RunAsync("systemd-analyze", ["security", "--offline=true", "--no-pager", Unit]);
        Assert.That(r.Stderr, Does.Not.Contain("Unknown key").And.Not.Contain("Failed to parse").And.Not.Contain("ignoring"), r.Stderr);
    }

    /// <summary>
    /// No systemd as PID 1 here to run the unit, so check its seccomp filter the other way round: every system
    /// call the daemon and its tor make (start, an upload, stop, under strace -f) must be in
    /// @system-service and none in @privileged, or the unit would break the service.
    /// </summary>
    [Test, Category("EndToEnd")]
    public async Task TheDaemonAndItsTorStayWithinTheUnitsSystemCallFilter()
    {
        using var dir = new TempDirectory();
        var trace = dir.Combine("strace.txt");
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        // tor's only directory authority is 127.0.0.1:1: it tries to connect (the same calls as to a relay) and
        // sends nothing off the machine.
        var offline = new Dictionary<string, object> { ["TorExtraConfig"] = new[] { OfflineTor.DirAuthority } };
        await using (var daemon = await DaemonProcess.StartAsync(dir.Combine("data"), key, tor: "launch", settings: offline,
            wrapper: ["strace", "-f", "-qq", "-c", "-o", trace]))
        {
            // Give tor time to start and try the network, then send one submission.
            await Task.Delay(TimeSpan.FromSeconds(10));
            using var client = new HttpClient { BaseAddress = daemon.BaseAddress };
            using var form = new MultipartFormDataContent { { new ByteArrayContent(new byte[100_000]), "files", "a.bin" }, { new StringContent("hi"), "message" } };
            using var response = await client.PostAsync("/", form);
            Assert.That((int)response.StatusCode, Is.EqualTo(200));
            Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        }
        // strace -c's table: "% time seconds usecs/call calls [errors] syscall", then a total line.
        var used = File.ReadAllLines(trace).Skip(2)
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(w => w.Length >= 5 && w[^1] != "total" && !w[0].StartsWith('-'))
            .Select(w => w[^1]).ToHashSet();
        Assert.That(used, Has.Count.GreaterThan(30), "strace saw the daemon work");
        // What the unit's SystemCallFilter= lines allow: their groups expanded, plus the calls they name.
        var allowed = new HashSet<string>();
        foreach (var word in File.ReadAllLines(Unit).Select(l => l.Trim())
                     .Where(l => l.StartsWith("SystemCallFilter=") && !l.StartsWith("SystemCallFilter=~"))
                     .SelectMany(l => l["SystemCallFilter=".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)))
            allowed.UnionWith(word.StartsWith('@') ? await Expand(word) : [word]);
        var privileged = await Expand("@privileged");
        TestContext.Out.WriteLine($"{used.Count} distinct system calls: {string.Join(' ', used.Order())}");
        Assert.That(used.Where(c => !allowed.Contains(c)), Is.Empty, "outside the unit's SystemCallFilter=");
        Assert.That(used.Where(privileged.Contains), Is.Empty, "inside SystemCallFilter=~@privileged");
    }

    /// <summary>The networks the unit's IPAddressDeny= lists, its keywords expanded as systemd.resource-control(5) does.</summary>
    private static List<System.Net.IPNetwork> DeniedNetworks()
    {
        var line = File.ReadAllLines(Unit).Select(l => l.Trim()).Single(l => l.StartsWith("IPAddressDeny="));
        return line["IPAddressDeny=".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries).SelectMany(word => word switch
        {
            "any" => new[] { "0.0.0.0/0", "::/0" },
            "localhost" => ["127.0.0.0/8", "::1/128"],
            "link-local" => ["169.254.0.0/16", "fe80::/64"],
            "multicast" => ["224.0.0.0/4", "ff00::/8"],
            _ => [word],
        }).Select(System.Net.IPNetwork.Parse).ToList();
    }

    private static bool Denied(List<System.Net.IPNetwork> deny, string address)
    {
        var ip = System.Net.IPAddress.Parse(address);
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        return deny.Any(n => n.Contains(ip));
    }

    [Test]
    public void TheUnitKeepsTheDaemonFromTheMachineItselfAndItsNetworksAndFromListeningOnIp()
    {
        var lines = File.ReadAllLines(Unit).Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#').ToList();
        Assert.That(lines, Does.Contain("SocketBindDeny=any"));
        var deny = DeniedNetworks();
        foreach (var address in new[] { "127.0.0.1", "::1", "169.254.169.254", "10.1.2.3", "172.20.0.1", "192.168.1.1", "100.100.100.200", "fd00:ec2::254", "fe80::1", "224.0.0.251" })
            Assert.That(Denied(deny, address), Is.True, $"{address} is not denied");
        foreach (var address in new[] { "128.31.0.39", "45.66.35.11", "2001:db8::1", "2a0b:f4c2::1" })
            Assert.That(Denied(deny, address), Is.False, $"{address}, a public address where a relay may be, is denied: tor could not reach it");
    }

    /// <summary>
    /// The unit's IPAddressDeny= and SocketBindDeny=any cannot be run here (no systemd as PID 1, and Debian 12's
    /// systemd lacks the BPF framework SocketBindDeny= needs), so check them the other way round: under strace, while
    /// tor bootstraps, the daemon and its tor bind no IP socket but the test's own loopback `Listen`, and connect to no
    /// address the unit denies. tor runs in a network namespace of its own with no interface up (unshare --net):
    /// it tries the relays' addresses it would use, each connect() fails at once, and no packet leaves the machine.
    /// It must have tried some, or the check proves nothing.
    /// </summary>
    [Test, Category("EndToEnd")]
    public async Task TheDaemonAndItsTorNeedNothingTheUnitsNetworkRulesDeny()
    {
        var deny = DeniedNetworks();
        using var dir = new TempDirectory();
        var trace = dir.Combine("strace.txt");
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        var isolatedTor = dir.Combine("tor-without-network");
        File.WriteAllText(isolatedTor, "#!/bin/sh\nexec unshare --net tor \"$@\"\n");
        File.SetUnixFileMode(isolatedTor, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        int port;
        await using (var daemon = await DaemonProcess.StartAsync(dir.Combine("data"), key, tor: "launch",
            settings: new Dictionary<string, object> { ["TorPath"] = isolatedTor },
            wrapper: ["strace", "-f", "-qq", "-e", "trace=bind,connect", "-o", trace]))
        {
            port = daemon.Port;
            await Task.Delay(TimeSpan.FromSeconds(20));
            Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        }
        var ip = File.ReadAllLines(trace).Where(l => l.Contains("sa_family=AF_INET")).ToList();
        var binds = ip.Where(l => l.Contains(" bind(")).ToList();
        Assert.That(binds.Where(l => !l.Contains($"htons({port})")), Is.Empty, "an IP socket bound other than the test's Listen: SocketBindDeny=any would refuse it");
        var connected = ip.Where(l => l.Contains(" connect("))
            .Select(l => Regex.Match(l, @"inet_addr\(""([^""]+)""\)|inet_pton\(AF_INET6, ""([^""]+)""")).Where(m => m.Success)
            .Select(m => m.Groups[1].Success ? m.Groups[1].Value : m.Groups[2].Value).Distinct().ToList();
        TestContext.Out.WriteLine($"{binds.Count} IP bind(s), to the Listen port {port}; connections to {connected.Count} address(es): {string.Join(' ', connected.Take(10))} ...");
        Assert.That(connected, Is.Not.Empty, "tor tried no relay's address: nothing was checked\n" + string.Join('\n', File.ReadLines(trace).Take(50)));
        Assert.That(connected.Where(a => Denied(deny, a)), Is.Empty, "tor (or the daemon) needs an address the unit's IPAddressDeny= refuses");
    }

    private static async Task<HashSet<string>> Expand(string group)
    {
        var r = await ChildProcess.RunAsync("systemd-analyze", ["syscall-filter", "--no-pager", group]);
        var set = new HashSet<string>();
        foreach (var name in r.Stdout.Split('\n').Skip(1).Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#'))
            if (name.StartsWith('@')) set.UnionWith(await Expand(name)); else set.Add(name);
        return set;
    }

    [Test]
    public void TheUnitRunsAsItsOwnUserWithTheDataDirectoryAsItsOnlyWritablePath()
    {
        var lines = File.ReadAllLines(Unit).Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] != '#').ToList();
        Assert.That(lines, Does.Contain("Type=notify").And.Contain("User=oniondrop").And.Contain("Restart=on-failure")
            .And.Contain("ProtectSystem=strict").And.Contain("UMask=0077").And.Contain("CapabilityBoundingSet="));
        Assert.That(lines.Where(l => l.StartsWith("ReadWritePaths=")), Is.EqualTo(new[] { "ReadWritePaths=/var/lib/oniondrop" }));
        Assert.That(lines, Has.None.StartsWith("MemoryDenyWriteExecute=yes"), ".NET's JIT needs W+X memory (docs/operations.md)");
    }
}
