using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using OnionDrop.Daemon.Status;
using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>
/// A real daemon with a real tor kept off the network (its only directory authority is 127.0.0.1:1, so it sends
/// nothing off this machine and never publishes): `oniondrop status --json` checked against /proc, the onion
/// service's hostname file and the filesystem; tor killed by hand and restarted.
/// </summary>
[Category("EndToEnd")]
public class DaemonStatusTests
{
    private TempDirectory dir = null!;
    private readonly List<int> torPids = [];

    [SetUp] public void SetUp() => dir = new TempDirectory();

    [TearDown]
    public void TearDown()
    {
        foreach (var pid in torPids) PosixProcess.Signal(pid, PosixProcess.SIGKILL);
        dir.Dispose();
    }

    private static readonly string Recipient = JournalistKey.Generate().PublicKey.ToString();

    /// <summary>tor's only directory authority is one nobody can reach on loopback: tests send nothing off the machine.</summary>
    private static readonly Dictionary<string, object> OfflineTor = new()
    {
        ["TorExtraConfig"] = new[] { OnionDrop.Testing.OfflineTor.DirAuthority },
    };

    private sealed record Status(int ExitCode, JsonNode Json, string Stderr)
    {
        public int Code => (int)Json["health"]!["code"]!;
        public string Reason => (string)Json["health"]!["reason"]!;
        public int? TorPid => (int?)Json["tor"]?["pid"];
        public override string ToString() => $"exit {ExitCode}\n{Json}\n{Stderr}";
    }

    private async Task<Status> StatusOf(string dataDir)
    {
        var r = await Oniondrop.RunAsync(["status", "--json", "--data-dir", dataDir], TimeSpan.FromMinutes(1));
        var json = JsonNode.Parse(r.Stdout)!;
        var s = new Status(r.ExitCode, json, r.Stderr);
        Assert.That(r.ExitCode, Is.EqualTo(s.Code), "the exit code is the health code\n" + s);
        return s;
    }

    private async Task<Status> WaitFor(string dataDir, Func<Status, bool> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        Status s;
        while (!condition(s = await StatusOf(dataDir)))
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"status never showed {what} within {timeout}\n{s}");
            await Task.Delay(250);
        }
        return s;
    }

    private static UnixFileMode Mode(string octal) => (UnixFileMode)Convert.ToInt32(octal, 8);

    private static int ParentOf(int pid) =>
        int.Parse(File.ReadAllLines($"/proc/{pid}/status").First(l => l.StartsWith("PPid:"))["PPid:".Length..].Trim());

    [Test]
    public async Task StatusMatchesRealityAndFollowsTorThroughAKillAndRestart()
    {
        var data = dir.Combine("data");
        await using var daemon = await DaemonProcess.StartAsync(data, Recipient, tor: "launch", settings: OfflineTor);

        var s = await WaitFor(data, s => s.Json["tor"]?["onionAddress"] is not null && s.TorPid is not null, TimeSpan.FromSeconds(90), "tor's pid and the onion address");
        var torPid = s.TorPid!.Value;
        torPids.Add(torPid);
        var onion = (string)s.Json["tor"]!["onionAddress"]!;

        Assert.Multiple(() =>
        {
            Assert.That((int)s.Json["pid"]!, Is.EqualTo(daemon.Pid), "the daemon's pid");
            Assert.That((string)s.Json["state"]!, Is.EqualTo("running"));
            Assert.That((string)s.Json["torMode"]!, Is.EqualTo("launch"));
            Assert.That(PosixProcess.Name(torPid), Is.EqualTo("tor"), "tor.pid is a tor");
            Assert.That(ParentOf(torPid), Is.EqualTo(daemon.Pid), "and the daemon's own child");
            Assert.That(onion, Is.EqualTo(File.ReadAllText(Path.Combine(data, "tor", "onion-service", "hostname")).Trim()), "the address tor holds the key for");
            Assert.That(File.GetUnixFileMode(Path.Combine(data, DaemonStatus.FileName)), Is.EqualTo(Mode("600")));
            // The filesystem's size pins it down exactly; free space moves with whatever else runs (other tests
            // write GiBs), so only roughly.
            var drive = new DriveInfo(data);
            Assert.That((long)s.Json["disk"]!["totalBytes"]!, Is.EqualTo(drive.TotalSize), "the data directory's filesystem");
            Assert.That((long)s.Json["disk"]!["freeBytes"]!, Is.EqualTo(drive.AvailableFreeSpace).Within(4L << 30), "free disk as statvfs sees it");
            Assert.That((int)s.Json["submissions"]!["waiting"]!, Is.EqualTo(0));
            Assert.That(DateTimeOffset.UtcNow - (DateTimeOffset)s.Json["updatedAt"]!, Is.LessThan(TimeSpan.FromSeconds(15)), "fresh");
        });

        // The verdict agrees with tor's own state: off the network, tor waits and the service is not published.
        Assert.That((bool)s.Json["tor"]!["published"]!, Is.False, s.ToString());
        Assert.That(s, Has.Property("Code").EqualTo((int)HealthCode.NotPublished).And.Property("Reason").Contains("waiting for the network"), s.ToString());
        var settled = s.Code;

        // A submission arrives: the figures (taken at start, then daily) do not follow until the next day, or
        // they would date it; the status file itself stays fresh.
        using (var client = new HttpClient { BaseAddress = daemon.BaseAddress })
        {
            var form = new MultipartFormDataContent();
            var file = new ByteArrayContent(new byte[10_000]);
            file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(file, "files", "a.bin");
            form.Add(new StringContent("hello"), "message");
            using var response = await client.PostAsync("/", form);
            Assert.That((int)response.StatusCode, Is.EqualTo(200), await response.Content.ReadAsStringAsync());
        }
        var uploadedAt = DateTimeOffset.UtcNow;
        s = await WaitFor(data, s => (DateTimeOffset)s.Json["updatedAt"]! > uploadedAt + StatusFileWriter.Interval, TimeSpan.FromSeconds(30), "a status written after the upload");
        Assert.That((int)s.Json["submissions"]!["waiting"]!, Is.Zero, "the start's figures, until the next day");

        // Kill tor by hand: status turns unhealthy. The supervisor restarts tor after a second (doubling each
        // time), so the window is short; a few tries cover a slow `oniondrop status` start.
        Status down = s;
        for (var attempt = 0; attempt < 3 && down.Code != (int)HealthCode.TorNotRunning; attempt++)
        {
            var victim = (await WaitFor(data, s => s.TorPid is not null, TimeSpan.FromSeconds(60), "a running tor")).TorPid!.Value;
            torPids.Add(victim);
            Assert.That(PosixProcess.Signal(victim, PosixProcess.SIGKILL), Is.True);
            down = await StatusOf(data);
            TestContext.Out.WriteLine($"after kill -9 of tor {victim}: {down.Code} {down.Reason}");
        }
        Assert.That(down.Code, Is.EqualTo((int)HealthCode.TorNotRunning), down.ToString());
        Assert.That(down.ExitCode, Is.Not.EqualTo(0));
        Assert.That(down.Reason, Does.StartWith("tor not running"));

        // ...and back once the supervisor has restarted it: a new tor, the same address.
        var up = await WaitFor(data, s => s.Code == settled && (int)s.Json["tor"]!["restarts"]! >= 1, TimeSpan.FromSeconds(90), "tor restarted");
        var newTor = up.TorPid!.Value;
        torPids.Add(newTor);
        Assert.Multiple(() =>
        {
            Assert.That(newTor, Is.Not.EqualTo(torPid));
            Assert.That(PosixProcess.IsAlive(newTor) && PosixProcess.Name(newTor) == "tor", Is.True);
            Assert.That((string)up.Json["tor"]!["onionAddress"]!, Is.EqualTo(onion), "same key, same address");
        });

        // A clean stop: exit 0, tor gone, status says stopped.
        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        Assert.That(PosixProcess.IsAlive(newTor), Is.False, "tor left running after the daemon stopped");
        var stopped = await StatusOf(data);
        Assert.That(stopped, Has.Property("Code").EqualTo((int)HealthCode.DaemonNotRunning).And.Property("Reason").Contains("stopped"));

        // The next start takes the figures afresh: the submission, with its day and no more.
        await using var again = await DaemonProcess.StartAsync(data, Recipient);
        s = await WaitFor(data, s => (int)s.Json["pid"]! == again.Pid, TimeSpan.FromSeconds(30), "the restarted daemon's status");
        Assert.That((int)s.Json["submissions"]!["waiting"]!, Is.EqualTo(1));
        Assert.That((long)s.Json["submissions"]!["waitingBytes"]!, Is.GreaterThan(10_000), "ciphertext bytes");
        Assert.That((string)s.Json["submissions"]!["oldestWaitingSince"]!, Is.EqualTo(DateTime.UtcNow.ToString("yyyy-MM-dd")));
    }

    [Test]
    public async Task A_status_file_replaced_by_a_link_or_a_FIFO_is_refused_without_reading_through_or_hanging()
    {
        // Root runs `oniondrop status` over a directory the daemon's user owns, and could plant these.
        var data = dir.Combine("data");
        Directory.CreateDirectory(data);
        var secret = dir.Combine("root-only");
        File.WriteAllText(secret, "very secret");
        File.CreateSymbolicLink(Path.Combine(data, DaemonStatus.FileName), secret);
        var linked = await Oniondrop.RunAsync(["status", "--json", "--data-dir", data], TimeSpan.FromSeconds(30));
        Assert.That(linked.ExitCode, Is.EqualTo((int)HealthCode.Unreadable), linked.ToString());
        Assert.That(linked.Stdout, Does.Contain("symbolic link").And.Not.Contain("'v'"), "nothing of the linked file is shown");
        Assert.That(linked.Stdout + linked.Stderr, Does.Not.Contain("very secret"));

        File.Delete(Path.Combine(data, DaemonStatus.FileName));
        var mkfifo = await ChildProcess.RunAsync("mkfifo", [Path.Combine(data, DaemonStatus.FileName)]);
        Assert.That(mkfifo.ExitCode, Is.Zero, mkfifo.ToString());
        var fifo = await Oniondrop.RunAsync(["status", "--data-dir", data], TimeSpan.FromSeconds(30));
        Assert.That(fifo.ExitCode, Is.EqualTo((int)HealthCode.Unreadable), fifo.ToString());

        // A document with escape sequences in its strings: shown without them (they could clear root's screen and forge lines).
        File.Delete(Path.Combine(data, DaemonStatus.FileName));
        var now = DateTimeOffset.UtcNow;
        var forged = new DaemonStatus
        {
            State = "running", Pid = Environment.ProcessId, StartedAt = now, UpdatedAt = now, IntervalSeconds = 5, TorMode = "none",
            Disk = new DiskStatus(data, 50L << 30, 100L << 30), Listen = "127.0.0.1:1\u001b[2J",
            Problems = ["\u001b]0;PWNED\u0007\u001b[2J\u001b[H all fine\u001b[8m"],
        };
        File.WriteAllText(Path.Combine(data, DaemonStatus.FileName), forged.ToJson());
        var shown = await Oniondrop.RunAsync(["status", "--data-dir", data], TimeSpan.FromSeconds(30));
        Assert.That(shown.Stdout + shown.Stderr, Does.Contain("PWNED"), shown.ToString());
        Assert.That((shown.Stdout + shown.Stderr).Any(c => c is '\u001b' or '\u0007'), Is.False, "no control character reaches the terminal");
    }

    [Test]
    public async Task After_a_clean_stop_the_status_file_says_tor_stopped_too()
    {
        // The status file was marked stopped before tor was (hosted services stop in reverse order), so it kept
        // "tor running (pid N)" under "daemon NOT running".
        var data = dir.Combine("data");
        await using var daemon = await DaemonProcess.StartAsync(data, Recipient, tor: "launch", settings: OfflineTor);
        var torPid = (await WaitFor(data, s => s.TorPid is not null, TimeSpan.FromSeconds(90), "tor's pid")).TorPid!.Value;
        torPids.Add(torPid);

        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        var stopped = await StatusOf(data);
        Assert.Multiple(() =>
        {
            Assert.That((string)stopped.Json["state"]!, Is.EqualTo("stopped"));
            Assert.That((string)stopped.Json["tor"]!["phase"]!, Is.EqualTo("stopped"), stopped.ToString());
            Assert.That((bool)stopped.Json["tor"]!["running"]!, Is.False, stopped.ToString());
            Assert.That(stopped.TorPid, Is.Null, stopped.ToString());
        });
        var human = await Oniondrop.RunAsync(["status", "--data-dir", data]);
        Assert.That(human.Stdout, Does.Contain("NOT running").And.Not.Contain("tor            running"), human.ToString());
    }

    [Test]
    public async Task WithoutTorHealthyUntilTheDaemonIsKilled()
    {
        var data = dir.Combine("data");
        await using var daemon = await DaemonProcess.StartAsync(data, Recipient, tor: "none");
        var s = await WaitFor(data, s => s.Json["pid"] is not null, TimeSpan.FromSeconds(30), "a status file");
        Assert.That(s.Code, Is.EqualTo(0), s.ToString());
        Assert.That(s.Json["tor"], Is.Null);

        var human = await Oniondrop.RunAsync(["status", "--data-dir", data]);
        Assert.That(human.ExitCode, Is.EqualTo(0));
        Assert.That(human.Stdout, Does.StartWith("OnionDrop: healthy").And.Contain($"pid {daemon.Pid}").And.Contain($"http://127.0.0.1:{daemon.Port}/"));

        // Taken at start and then daily, the figures show an upload in neither the count nor the free disk: status.json,
        // rewritten every 5 s, would otherwise tell when each submission arrived, and its size.
        var before = await StatusOf(data);
        using (var client = new HttpClient { BaseAddress = daemon.BaseAddress })
        {
            var form = new MultipartFormDataContent { { new ByteArrayContent(new byte[3_000_000]), "files", "a.bin" } };
            using var response = await client.PostAsync("/", form);
            Assert.That((int)response.StatusCode, Is.EqualTo(200));
        }
        var uploaded = DateTimeOffset.UtcNow;
        var after = await WaitFor(data, s => (DateTimeOffset)s.Json["updatedAt"]! > uploaded.AddSeconds(1), TimeSpan.FromSeconds(30), "a rewrite after the upload");
        Assert.That((int)after.Json["submissions"]!["waiting"]!, Is.Zero, "the count waits for the next daily figures");
        Assert.That((long)after.Json["disk"]!["freeBytes"]!, Is.EqualTo((long)before.Json["disk"]!["freeBytes"]!), "so does the free disk");
        Assert.That((DateTimeOffset)after.Json["submissions"]!["asOf"]!, Is.LessThan(uploaded));
        // Said on the line itself: a trial's user, just after a submission, read "0 waiting" as a submission lost.
        Assert.That((await Oniondrop.RunAsync(["status", "--data-dir", data])).Stdout, Does.Match(
            @"submissions +0 waiting \(0 B\), as of \d\d:\d\d UTC \(counted at start and daily, so that no count dates a submission: fetch to see what arrived since\)\n"));

        await daemon.KillAsync();
        var dead = await StatusOf(data);
        Assert.That(dead, Has.Property("Code").EqualTo((int)HealthCode.DaemonNotRunning).And.Property("Reason").Contains($"pid {daemon.Pid} is gone"));
    }
}
