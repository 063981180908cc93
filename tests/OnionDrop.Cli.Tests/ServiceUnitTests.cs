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
