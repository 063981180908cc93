using System.Diagnostics;
using OnionDrop.Testing;
using OnionDrop.Tor;

namespace OnionDrop.Cli.Tests;

/// <summary>
/// oniondrop processes hold secret keys and plaintext: none may be dumped to a core file or read by another process of
/// its user. The kernel shows a process that is not dumpable by giving the files in its /proc folder to root.
/// </summary>
public class ProcessHardeningTests
{
    [Test]
    public async Task An_oniondrop_process_is_not_dumpable()
    {
        using var temp = new TempDirectory();
        File.SetUnixFileMode(temp.Path, (UnixFileMode)0b111_111_111); // for the unprivileged user's -o folder
        // A fetch waiting for a server that never answers: a process that stays up, run as nobody (root's /proc is root's anyway).
        var psi = ChildProcess.StartInfo("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--",
            "env", "HOME=/nonexistent", "dotnet", Oniondrop.Dll, "fetch", "--via", "sleep 60", "-o", temp.Combine("in")]);
        using var fetch = Process.Start(psi)!;
        try
        {
            int? owner = null;
            for (var waited = Stopwatch.StartNew(); waited.Elapsed < TimeSpan.FromSeconds(30) && !fetch.HasExited; await Task.Delay(100))
            {
                // setpriv (root's) becomes dotnet (nobody's) and, once the command runs, its /proc files are root's.
                if (!File.ReadAllText($"/proc/{fetch.Id}/cmdline").StartsWith("dotnet\0")) continue;
                owner = UnixAccess.Of($"/proc/{fetch.Id}/status").Uid;
                if (owner == 0) break;
            }
            if (fetch.HasExited) Assert.Fail($"fetch ended early: {await fetch.StandardError.ReadToEndAsync()}");
            Assert.That(owner, Is.EqualTo(0), "/proc/PID/status of a running oniondrop belongs to root: the process is not dumpable");
        }
        finally
        {
            fetch.Kill(entireProcessTree: true);
            await fetch.WaitForExitAsync();
        }
    }

    /// <summary>
    /// fetch --open reads the key's passphrase from ONIONDROP_PASSPHRASE before it starts its transport, which never
    /// needs it. Inherited, it sat in the environment of ssh, of a --via shell and of a ProxyCommand or torsocks, which
    /// are dumpable: any process of the journalist's user could read it in /proc/PID/environ for the whole fetch (and
    /// ssh could send it on, given a SendEnv that matches), while fetch itself keeps its memory from them.
    /// </summary>
    [Test]
    public async Task The_passphrase_from_the_environment_is_not_passed_on_to_the_transport()
    {
        using var temp = new TempDirectory();
        const string passphrase = "correct horse battery staple";
        var keyFile = temp.Combine("journalist.key");
        using (var key = OnionDrop.Sealing.JournalistKey.Generate()) key.Save(keyFile, passphrase, 3, 8 * 1024 * 1024);
        var psi = Oniondrop.StartInfo("fetch", "-o", temp.Combine("in"), "--open", "--key", keyFile,
            "--via", "echo \"transport sees: ${ONIONDROP_PASSPHRASE:-nothing}\" >&2; exit 1");
        psi.Environment["ONIONDROP_PASSPHRASE"] = passphrase;

        var fetch = await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(1));

        Assert.That(fetch.Stderr, Does.Contain("transport sees: nothing"), fetch.ToString());
        Assert.That(fetch.Stderr, Does.Not.Contain(passphrase));
    }
}
