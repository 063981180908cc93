using OnionDrop.Daemon.Status;

namespace OnionDrop.Cli.Tests;

/// <summary>The verdicts behind `oniondrop status`'s exit code, on documents built by hand.</summary>
public class StatusHealthTests
{
    private static readonly DateTimeOffset Now = new(2026, 11, 23, 12, 0, 0, TimeSpan.Zero);
    private const int DaemonPid = 1000, TorPid = 1001;

    private static DaemonStatus Status(Func<TorStatus, TorStatus>? tor = null, string torMode = "launch") => new()
    {
        State = "running",
        Pid = DaemonPid,
        StartedAt = Now.AddHours(-1),
        UpdatedAt = Now.AddSeconds(-2),
        IntervalSeconds = 5,
        TorMode = torMode,
        Tor = torMode == "none" ? null : (tor ?? (t => t))(new TorStatus
        {
            Phase = "running", Running = true, Pid = TorPid, BootstrapPercent = 100, BootstrapSummary = "Done",
            OnionAddress = "abc.onion", Published = true,
        }),
        Submissions = new SubmissionsStatus(2, 100, new DateOnly(2026, 11, 20), 3),
        Disk = new DiskStatus("/data", 50L << 30, 100L << 30),
    };

    private static HealthVerdict Judge(DaemonStatus s, params int[] dead) => StatusHealth.Evaluate(s, Now, pid => !dead.Contains(pid));

    [Test]
    public void AllWellIsHealthy() => Assert.That(Judge(Status()).Code, Is.EqualTo(HealthCode.Healthy));

    [Test]
    public void NoTorModeNeedsNoTor() => Assert.That(Judge(Status(torMode: "none")).Code, Is.EqualTo(HealthCode.Healthy));

    [Test]
    public void DaemonGoneStoppedOrHung()
    {
        Assert.That(Judge(Status(), DaemonPid), Has.Property("Code").EqualTo(HealthCode.DaemonNotRunning).And.Property("Reason").Contains("pid 1000 is gone"));
        Assert.That(Judge(Status() with { State = "stopped" }).Reason, Does.Contain("stopped"));
        var stale = Judge(Status() with { UpdatedAt = Now.AddSeconds(-16) });
        Assert.That(stale, Has.Property("Code").EqualTo(HealthCode.DaemonNotRunning).And.Property("Reason").Contains("stale"));
        Assert.That(Judge(Status() with { UpdatedAt = Now.AddSeconds(-14) }).Code, Is.EqualTo(HealthCode.Healthy), "three intervals, at least 15 s, of grace");
    }

    [Test]
    public void TorDownOrItsPidGone()
    {
        var down = Judge(Status(t => t with { Running = false, Phase = "restarting", Pid = null, LastProblem = "tor exited with code 1" }));
        Assert.That(down, Has.Property("Code").EqualTo(HealthCode.TorNotRunning).And.Property("Reason").Contains("tor exited with code 1"));
        Assert.That(Judge(Status(), TorPid), Has.Property("Code").EqualTo(HealthCode.TorNotRunning).And.Property("Reason").Contains("pid 1001 is gone"),
            "the status file says running, but the pid is checked against reality");
    }

    [Test]
    public void A_published_tor_that_stopped_answering_is_not_healthy()
    {
        var silent = Judge(Status(t => t with { Answering = false, LastProblem = "tor (pid 1001) has not answered on its control connection for 15 s (stopped or hung?); it is replaced after 60 s" }));
        Assert.That(silent, Has.Property("Code").EqualTo(HealthCode.TorNotRunning).And.Property("Reason").StartsWith("tor not answering: tor (pid 1001) has not answered"));
        var older = System.Text.Json.JsonSerializer.Deserialize<TorStatus>("""{"phase":"running","running":true,"published":true}""", new System.Text.Json.JsonSerializerOptions(System.Text.Json.JsonSerializerDefaults.Web))!;
        Assert.That(older.Answering, Is.True, "a daemon that did not say is taken as answering");
        var table = OnionDrop.Cli.Commands.StatusCommand.Table(Status(t => t with { Answering = false }), Now);
        Assert.That(table, Does.Contain("tor            running but NOT answering (pid 1001)"));
        Assert.That(table, Does.Contain("abc.onion, published but unreachable: tor is not answering"), "not a plain 'published' under a frozen tor");
        Assert.That(OnionDrop.Cli.Commands.StatusCommand.Table(Status(), Now), Does.Contain("abc.onion, published\n"));
    }

    [Test]
    public void NotPublishedSaysTorIsWaitingForTheNetwork()
    {
        var v = Judge(Status(t => t with { Published = false, BootstrapPercent = 5, BootstrapSummary = "Connecting to a relay" }));
        Assert.That(v.Code, Is.EqualTo(HealthCode.NotPublished));
        Assert.That(v.Reason, Does.Contain("waiting for the network").And.Contain("5%").And.Contain("Connecting to a relay"));

        // Stuck while relays refuse it (a firewall, a censored network), tor's own complaint is the clue: it was left out.
        var refused = Judge(Status(t => t with { Published = false, BootstrapPercent = 14, BootstrapSummary = "Handshaking with a relay", LastProblem = "a relay closed the connection" }));
        Assert.That(refused.Reason, Does.EndWith("(bootstrap 14%: Handshaking with a relay; tor's last problem: a relay closed the connection)"));
    }

    [Test]
    public void StoreProblemsAndLowDiskDegrade()
    {
        Assert.That(Judge(Status() with { Problems = ["store unreadable: locked"] }).Reason, Is.EqualTo("store unreadable: locked"));
        var low = Judge(Status() with { Disk = new DiskStatus("/data", 100L << 20, 100L << 30) });
        Assert.That(low, Has.Property("Code").EqualTo(HealthCode.Degraded).And.Property("Reason").Contains("low disk: 100.0 MiB"));
    }

    [Test]
    public void The_table_of_a_daemon_that_is_gone_says_so_and_offers_no_loopback_address()
    {
        var s = Status() with { Listen = "127.0.0.1:8080" };
        var live = OnionDrop.Cli.Commands.StatusCommand.Table(s, Now);
        Assert.That(live, Does.Contain("daemon         running, pid 1000").And.Contain("http://127.0.0.1:8080/"));
        var gone = OnionDrop.Cli.Commands.StatusCommand.Table(s, Now.AddMinutes(5), live: false);
        Assert.That(gone, Does.Contain("daemon         NOT running; below, what it last wrote").And.Not.Contain("http://127.0.0.1:8080/"));
    }

    [Test]
    public void TheDocumentRoundTripsThroughJson()
    {
        var s = Status() with { Problems = ["store unreadable: locked", "low disk"] };
        var back = DaemonStatus.Parse(s.ToJson());
        Assert.That(back.Problems, Is.EqualTo(s.Problems));
        // The list compares by reference in record equality: everything else is compared as a whole.
        Assert.That(back with { Problems = s.Problems }, Is.EqualTo(s));
        Assert.That(s.ToJson(), Does.Contain("\"onionAddress\": \"abc.onion\"").And.Contain("\"waiting\": 2"));
    }

    [Test]
    public void ProcessExistsSeesOurselvesAndNotAnExitedChild()
    {
        Assert.That(StatusHealth.ProcessExists(Environment.ProcessId), Is.True);
        using var p = System.Diagnostics.Process.Start("true")!;
        p.WaitForExit();
        Assert.That(StatusHealth.ProcessExists(p.Id), Is.False);
    }
}
