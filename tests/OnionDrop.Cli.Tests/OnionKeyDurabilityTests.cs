using System.Text.RegularExpressions;
using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>
/// Launch mode: tor makes the onion service's key, its public key and hostname by temp file and rename, and fsyncs
/// none of them nor their directory (Debian's tor, seen with strace). A power cut in the first seconds after a new
/// service is made could lose them, and the address with them. The daemon makes them durable once tor has written
/// hostname: checked from the kernel's side, the real daemon and its tor under `strace -f`.
/// </summary>
[Category("EndToEnd")]
public class OnionKeyDurabilityTests
{
    private TempDirectory _dir = null!;

    [SetUp] public void SetUp() => _dir = new TempDirectory();
    [TearDown] public void TearDown() => _dir.Dispose();

    [Test]
    public async Task A_new_onion_services_key_hostname_and_their_folders_are_fsynced_once_tor_has_written_them()
    {
        var data = _dir.Combine("data");
        var trace = _dir.Combine("strace.txt");
        var offline = new Dictionary<string, object> { ["TorExtraConfig"] = new[] { OfflineTor.DirAuthority } };
        string[] strace = ["strace", "-f", "-qq", "--seccomp-bpf", "-o", trace, "-e", "trace=openat,close,rename,renameat,renameat2,fsync,fdatasync"];

        await using (var daemon = await DaemonProcess.StartAsync(data, JournalistKey.Generate().PublicKey.ToString(), tor: "launch", settings: offline, wrapper: strace))
        {
            // status.json names the address once the daemon has read tor's hostname, which is when it makes the files durable.
            var status = Path.Combine(data, "status.json");
            for (var waited = 0; !(File.Exists(status) && File.ReadAllText(status).Contains(".onion\"")); waited++)
            {
                Assert.That(waited, Is.LessThan(600), "the daemon never published the onion address in status.json:\n" + daemon.Output);
                await Task.Delay(100);
            }
            Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        }

        var service = Path.Combine(data, "tor", "onion-service");
        var lines = File.ReadAllLines(trace);
        var created = Array.FindIndex(lines, l => l.Contains($"rename(\"{service}/hostname.tmp\", \"{service}/hostname\") = 0"));
        Assert.That(created, Is.GreaterThanOrEqualTo(0), "tor renamed hostname.tmp into place");
        var after = lines.Skip(created + 1).ToList();
        Assert.Multiple(() =>
        {
            foreach (var path in new[] { "hs_ed25519_secret_key", "hs_ed25519_public_key", "hostname" }.Select(f => Path.Combine(service, f))
                         .Append(service).Append(Path.Combine(data, "tor")).Append(data))
                Assert.That(FsyncedByPath(after, path), $"{path} fsynced after tor made the service");
        });
    }

    /// <summary>Whether one thread opens <paramref name="path"/> and fsyncs that descriptor successfully (tor, a child, shares no descriptors with the daemon).</summary>
    private static bool FsyncedByPath(IReadOnlyList<string> lines, string path)
    {
        var open = new Regex($@"^(\d+)\s+openat\(AT_FDCWD, ""{Regex.Escape(path)}"", [^)]*\)\s+=\s+(\d+)$");
        for (var i = 0; i < lines.Count; i++)
        {
            if (open.Match(lines[i]) is not { Success: true } m) continue;
            var (tid, fd) = (m.Groups[1].Value, m.Groups[2].Value);
            for (var j = i + 1; j < lines.Count && !Regex.IsMatch(lines[j], $@"^{tid}\s+close\({fd}\)"); j++)
                if (Regex.IsMatch(lines[j], $@"^{tid}\s+f(?:data)?sync\({fd}\)\s+=\s+0$")) return true;
        }
        return false;
    }
}
