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
}
