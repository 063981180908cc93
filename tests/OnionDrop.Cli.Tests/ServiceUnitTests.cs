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
        await using (var daemon = await DaemonProcess.StartAsync(dir.Combine("data"), key, tor: "launch",
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
        var allowed = await Expand("@system-service");
        var privileged = await Expand("@privileged");
        TestContext.Out.WriteLine($"{used.Count} distinct system calls: {string.Join(' ', used.Order())}");
        Assert.That(used.Where(c => !allowed.Contains(c)), Is.Empty, "outside SystemCallFilter=@system-service");
        Assert.That(used.Where(privileged.Contains), Is.Empty, "inside SystemCallFilter=~@privileged");
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
