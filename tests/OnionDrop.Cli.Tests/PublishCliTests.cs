using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>
/// scripts/publish-cli's folder for the journalist: its `oniondrop` runs the program, or, on a machine without the
/// libraries .NET loads at run time (ICU, OpenSSL), says in one line which Debian packages to bring, instead of
/// .NET's stack trace and its advice to use a package manager (which an offline machine cannot).
/// </summary>
[Category("EndToEnd")]
public class PublishCliTests
{
    private TempDirectory tmp = null!;
    private string folder = null!;

    [OneTimeSetUp]
    public async Task Publish()
    {
        tmp = new TempDirectory();
        var scripts = Path.GetDirectoryName(await InstallScriptTests.CopyOfTheRepository(tmp))!;
        folder = tmp.Combine("oniondrop-cli");
        var r = await ChildProcess.RunAsync("bash", [Path.Combine(scripts, "publish-cli"), folder], TimeSpan.FromMinutes(8));
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
    }

    [OneTimeTearDown]
    public void Clean() => tmp.Dispose();

    [Test]
    public async Task RunsTheProgramWithItsArgumentsAndExitCodeAlsoThroughALinkInThePath()
    {
        var bin = tmp.Combine("bin");
        Directory.CreateDirectory(bin);
        var link = Path.Combine(bin, "oniondrop");
        File.CreateSymbolicLink(link, Path.Combine(folder, "oniondrop"));
        foreach (var command in new[] { Path.Combine(folder, "oniondrop"), link })
        {
            var version = await ChildProcess.RunAsync(command, ["--version"]);
            Assert.That(version.ExitCode, Is.EqualTo(0), version.ToString());
            Assert.That(version.Stdout, Does.Match(@"^\d+\.\d+\.\d+"));

            var key = tmp.Combine(Guid.NewGuid().ToString("N") + ".key");
            var keygen = await ChildProcess.RunAsync(command, ["keygen", "-o", key]);
            Assert.That(keygen.ExitCode, Is.EqualTo(0), keygen.ToString());
            Assert.That(File.Exists(key), Is.True);
            Assert.That(keygen.Stdout, Does.Contain("odpk1"));

            // The argument arrives (no "BLOB missing"), and so does the program's exit code for a usage error.
            var wrong = await ChildProcess.RunAsync(command, ["open", "x.sealed"]);
            Assert.That(wrong.ExitCode, Is.EqualTo(2), wrong.ToString());
            Assert.That(wrong.Stderr, Does.Contain("Option '--key' is required").And.Not.Contain("BLOB"));
        }
    }

    /// <summary>
    /// The loader's libraries as the machine's ldconfig lists them: its cache (-p) and a fresh look through the
    /// directories (-N -X -v); the fake ldconfig, first in PATH, lists those lines only.
    /// </summary>
    private async Task<ProcessResult> RunWithLdconfigListing(Func<string, bool> keep, string? ldLibraryPath = null, bool cacheToo = true)
    {
        async Task<string> Real(params string[] args)
        {
            var r = await ChildProcess.RunAsync("/sbin/ldconfig", args);
            Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
            return string.Concat(r.Stdout.Split('\n').Where(l => l.StartsWith('/') || keep(l)).Select(l => l + "\n"));
        }
        var fake = tmp.Combine("fake-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(fake);
        await File.WriteAllTextAsync(Path.Combine(fake, "cache"), cacheToo ? await Real("-p") : "0 libs found in cache `/etc/ld.so.cache'\n");
        await File.WriteAllTextAsync(Path.Combine(fake, "scan"), await Real("-N", "-X", "-v"));
        await File.WriteAllTextAsync(Path.Combine(fake, "ldconfig"),
            $"#!/bin/sh\ncase \"$1\" in -p) cat '{fake}/cache';; *) cat '{fake}/scan';; esac\n");
        File.SetUnixFileMode(Path.Combine(fake, "ldconfig"), (UnixFileMode)Convert.ToInt32("755", 8));

        var psi = ChildProcess.StartInfo(Path.Combine(folder, "oniondrop"), ["--version"]);
        psi.Environment["PATH"] = fake + ":" + Environment.GetEnvironmentVariable("PATH");
        psi.Environment.Remove("LD_LIBRARY_PATH");
        if (ldLibraryPath is not null) psi.Environment["LD_LIBRARY_PATH"] = ldLibraryPath;
        return await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(1));
    }

    private static bool Icu(string line) => line.Contains("libicuuc.so.") || line.Contains("libicui18n.so.");
    private static bool OpenSsl(string line) => line.Contains("libssl.so.") || line.Contains("libcrypto.so.");

    private const string HowToBring = "on a networked Debian 12 run 'apt-get download";

    [Test]
    public async Task WithoutIcuAndOpenSslSaysInOneLineWhichPackagesToBringAndDoesNotStartDotnet()
    {
        var r = await RunWithLdconfigListing(_ => true);
        Assert.That(r.ExitCode, Is.EqualTo(0), "with everything listed it runs\n" + r);

        r = await RunWithLdconfigListing(_ => false);
        Assert.Multiple(() =>
        {
            Assert.That(r.ExitCode, Is.EqualTo(127), r.ToString());
            Assert.That(r.Stdout, Is.Empty, "the program's --version ran");
            Assert.That(r.Stderr.TrimEnd('\n').Split('\n'), Has.Length.EqualTo(1), r.ToString());
            Assert.That(r.Stderr, Does.StartWith("oniondrop: ").And.Contain("libicu72").And.Contain("libssl3").And.Contain(HowToBring)
                .And.Contain("dpkg -i").And.Not.Contain("Unhandled").And.Not.Contain("ICU package"));
        });

        r = await RunWithLdconfigListing(l => !OpenSsl(l));
        Assert.That(r.ExitCode, Is.EqualTo(127), r.ToString());
        Assert.That(r.Stderr, Does.Contain("libssl3").And.Not.Contain("libicu72").And.Contain(HowToBring));

        r = await RunWithLdconfigListing(l => !Icu(l));
        Assert.That(r.ExitCode, Is.EqualTo(127), r.ToString());
        Assert.That(r.Stderr, Does.Contain("libicu72").And.Not.Contain("libssl3").And.Contain(HowToBring));
    }

    [Test]
    public async Task FindsLibrariesTheLoaderFindsThoughTheCacheIsOldOrTheyAreInLdLibraryPath()
    {
        // Installed since ldconfig last built its cache: the loader still finds them in its directories.
        var r = await RunWithLdconfigListing(_ => true, cacheToo: false);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());

        // Unpacked into a folder of the user's (dpkg -x), named by LD_LIBRARY_PATH.
        var libs = tmp.Combine("libs-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(libs);
        foreach (var file in Directory.EnumerateFiles("/usr/lib/x86_64-linux-gnu").Where(f => Icu(f) || OpenSsl(f)))
            File.CreateSymbolicLink(Path.Combine(libs, Path.GetFileName(file)), file);
        r = await RunWithLdconfigListing(_ => false, ldLibraryPath: "/nonexistent:" + libs);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
    }
}
