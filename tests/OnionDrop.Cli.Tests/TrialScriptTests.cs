using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>The README's first command, run as written (in a scratch directory): it serves, names its key and address, stops cleanly.</summary>
[Category("EndToEnd")]
public class TrialScriptTests
{
    [Test]
    public async Task TrialServesTheFormSaysTorIsWaitingAndStopsEverything()
    {
        using var dir = new TempDirectory();
        var trialDir = dir.Combine("trial");
        var port = FreePort.Next();
        // setsid: the trial leads a process group of its own, which the test can interrupt as a terminal would.
        // env --default-signal=INT: as in a terminal, Ctrl-C is not ignored. A test run started in the background
        // (`scripts/test &`) passes SIGINT down ignored, and bash cannot trap a signal ignored on entry.
        var psi = ChildProcess.StartInfo("setsid", ["env", "--default-signal=INT", "bash", Path.Combine(RepoPaths.Root, "scripts", "trial"), "--dir", trialDir, "--port", port.ToString()]);
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("ONIONDROP_", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(name);
        // tor's only directory authority is one nobody can reach on loopback: the test sends nothing off the machine,
        // and tor waits for the network on every machine.
        psi.Environment["ONIONDROP_TOR_EXTRA_CONFIG"] = OfflineTor.DirAuthority;
        using var trial = Process.Start(psi)!;
        trial.StandardInput.Close();
        var lines = new BlockingCollection<string>();
        var all = new ConcurrentQueue<string>();
        // The end of its output ends the wait: a trial that exits early fails at once, not after the deadline.
        trial.OutputDataReceived += (_, e) => { if (e.Data is { } l) { lines.Add(l); all.Enqueue(l); } else lines.CompleteAdding(); };
        trial.ErrorDataReceived += (_, e) => { if (e.Data is { } l) all.Enqueue("stderr: " + l); };
        trial.BeginOutputReadLine();
        trial.BeginErrorReadLine();
        string Output() => string.Join('\n', all);

        var daemonPid = 0;
        int? torPid = null;
        try
        {
            // It may build first: allow minutes for the announcement.
            string? url = null, onion = null;
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(6);
            while (url is null || onion is null)
            {
                Assert.That(lines.TryTake(out var line, deadline - DateTime.UtcNow), Is.True, "no announcement\n" + Output());
                if (Regex.Match(line!, @"the form, on this machine:\s+(\S+)") is { Success: true } u) url = u.Groups[1].Value;
                if (Regex.Match(line!, @"onion address \(Tor Browser\):\s+http://(\S+)/") is { Success: true } o) onion = o.Groups[1].Value;
            }
            Assert.That(url, Is.EqualTo($"http://127.0.0.1:{port}/"));
            Assert.That(onion, Is.EqualTo(File.ReadAllText(Path.Combine(trialDir, "data", "tor", "onion-service", "hostname")).Trim()));
            Assert.That(File.GetUnixFileMode(Path.Combine(trialDir, "journalist.key")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
            Assert.That(Output(), Does.Contain("journalist key:"));
            // keygen's heading for the public key came out with the key itself swallowed beneath it.
            Assert.That(Output(), Does.Not.Contain("public key (give it to the server"));
            Assert.That(Output(), Does.Contain("its public key: " + File.ReadAllText(Path.Combine(trialDir, "journalist.pub")).Trim()));

            using (var client = new HttpClient())
            {
                var page = await client.GetStringAsync(url);
                Assert.That(page, Does.Contain("<form").And.Contain("multipart/form-data"));
            }

            // No network for tor: it must say so plainly.
            deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            while (true)
            {
                Assert.That(lines.TryTake(out var line, deadline - DateTime.UtcNow), Is.True, "never said tor waits for the network\n" + Output());
                Assert.That(line, Does.Not.Contain("published: the onion service is reachable"), "published with no network?\n" + Output());
                if (line!.Contains("tor is waiting for the network") && line.Contains(url!)) break;
            }

            var status = JsonNode.Parse(File.ReadAllText(Path.Combine(trialDir, "data", "status.json")))!;
            daemonPid = (int)status["pid"]!;
            torPid = (int?)status["tor"]?["pid"];
            Assert.That(PosixProcess.IsAlive(daemonPid), Is.True);
        }
        finally
        {
            // Ctrl-C: SIGINT to the whole foreground process group, as the terminal sends it. Only the script
            // may act on it (it stops the daemon, which stops tor): a tor that got it too would die under its
            // supervisor, which the daemon log below would show.
            PosixProcess.Signal(-trial.Id, PosixProcess.SIGINT);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try { await trial.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { trial.Kill(entireProcessTree: true); }
            foreach (var pid in new[] { daemonPid, torPid ?? 0 }.Where(p => p > 0 && PosixProcess.IsAlive(p)))
            {
                PosixProcess.Signal(pid, PosixProcess.SIGKILL);
                Assert.Fail($"pid {pid} outlived the trial\n{Output()}");
            }
        }
        Assert.That(Output(), Does.Contain("stopping the daemon"));
        Assert.That(Output(), Does.Contain("trial: stopped"));
        // The daemon stopped its tor itself: tor was not seen to die under it, and the status says stopped.
        Assert.That(File.ReadAllText(Path.Combine(trialDir, "daemon.log")), Does.Not.Contain("went away unexpectedly"));
        Assert.That((string?)JsonNode.Parse(File.ReadAllText(Path.Combine(trialDir, "data", "status.json")))!["state"], Is.EqualTo("stopped"));
    }

    [Test]
    public async Task Run_from_another_folder_the_trial_prints_commands_that_work_there()
    {
        // `~/oniondrop/scripts/trial` from the home folder printed `scripts/oniondrop status --data-dir .trial/data`,
        // paths that exist only from the checkout: copied as printed, every command failed.
        using var dir = new TempDirectory();
        var elsewhere = Directory.CreateDirectory(dir.Combine("elsewhere")).FullName;
        var psi = ChildProcess.StartInfo("setsid", ["env", "--default-signal=INT", "bash", Path.Combine(RepoPaths.Root, "scripts", "trial"),
            "--dir", dir.Combine("trial"), "--port", FreePort.Next().ToString(), "--tor", "none"], elsewhere);
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("ONIONDROP_", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(name);
        using var trial = Process.Start(psi)!;
        trial.StandardInput.Close();
        var lines = new BlockingCollection<string>();
        var errors = new ConcurrentQueue<string>();
        trial.OutputDataReceived += (_, e) => { if (e.Data is { } l) lines.Add(l); else lines.CompleteAdding(); };
        trial.ErrorDataReceived += (_, e) => { if (e.Data is { } l) errors.Enqueue(l); };
        trial.BeginOutputReadLine();
        trial.BeginErrorReadLine();
        try
        {
            string? status = null, fetch = null;
            var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(6);   // it may build first
            while (status is null || fetch is null)
            {
                Assert.That(lines.TryTake(out var line, deadline - DateTime.UtcNow), Is.True, "no announcement\n" + string.Join('\n', errors));
                if (Regex.Match(line!, @"^\s+status:\s+(.+)$") is { Success: true } s) status = s.Groups[1].Value;
                if (Regex.Match(line!, @"^\s+open what arrives:\s+(.+)$") is { Success: true } f) fetch = f.Groups[1].Value;
            }
            foreach (var command in new[] { status, fetch })
            {
                var run = await ChildProcess.RunAsync(ChildProcess.StartInfo("bash", ["-c", command], elsewhere), TimeSpan.FromMinutes(2));
                Assert.That(run.ExitCode, Is.Zero, $"{command}\n{run}");
            }
        }
        finally
        {
            PosixProcess.Signal(-trial.Id, PosixProcess.SIGINT);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            try { await trial.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { trial.Kill(entireProcessTree: true); }
        }
    }

    /// <summary>
    /// The trial installed the test suite's packages too (Chromium, Firefox, onionshare-cli, wrk, gdb...), hundreds
    /// of megabytes an operator trying the daemon does not need. Seen with apt and dpkg replaced by stubs. It needs
    /// ICU and CA certificates, though: dotnet aborts without libicu72 (an SDK from Microsoft's tarball, on a fresh
    /// Debian 12, where the suite's packages had brought it in by chance).
    /// </summary>
    [Test]
    public async Task The_trial_installs_only_what_the_daemon_needs()
    {
        using var dir = new TempDirectory();
        var bin = Directory.CreateDirectory(dir.Combine("bin")).FullName;
        var asked = dir.Combine("apt-get.args");
        File.WriteAllText(Path.Combine(bin, "dpkg-query"), "#!/bin/sh\nexit 1\n");   // nothing installed
        File.WriteAllText(Path.Combine(bin, "apt-get"), $"#!/bin/sh\necho \"$*\" >> '{asked}'\n");
        File.WriteAllText(Path.Combine(bin, "sudo"), "#!/bin/sh\nexec \"$@\"\n");
        foreach (var stub in Directory.GetFiles(bin)) File.SetUnixFileMode(stub, (UnixFileMode)0b111_101_101);

        async Task<string[]> PackagesAsync(params string[] args)
        {
            File.Delete(asked);
            var psi = ChildProcess.StartInfo("bash", [Path.Combine(RepoPaths.Root, "scripts", "setup-deps"), .. args]);
            psi.Environment["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH");
            var run = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(30));
            Assert.That(run.ExitCode, Is.Zero, run.ToString());
            var install = File.ReadAllLines(asked).Single(l => l.Contains("install"));
            return install.Split(' ').SkipWhile(w => w != "--no-install-recommends").Skip(1).ToArray();
        }

        Assert.That(await PackagesAsync("--trial"), Is.EquivalentTo(new[] { "tor", "jq", "libicu72", "ca-certificates" }));
        Assert.That(await PackagesAsync(), Is.SupersetOf(new[] { "tor", "jq", "libicu72", "ca-certificates", "chromium", "w3m", "tmux", "openssh-server", "onionshare-cli" }), "the suite's");
        Assert.That(File.ReadAllText(Path.Combine(RepoPaths.Root, "scripts", "trial")), Does.Contain("scripts/setup-deps\" --trial"));
    }
}
