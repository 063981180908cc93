using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Sealing;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>Bad settings stop the daemon at start with a message naming the bad entry.</summary>
public sealed class OptionsValidatorTests
{
    private static OnionDropOptions Valid()
    {
        using var key = JournalistKey.Generate();
        return new OnionDropOptions { Recipients = [key.PublicKey.ToString()], Listen = "127.0.0.1:8080" };
    }

    private static string[] Errors(OnionDropOptions o) =>
        new OnionDropOptionsValidator().Validate(null, o) is { Failed: true } r ? r.Failures!.ToArray() : [];

    [Test]
    public void Valid_options_pass() => Assert.That(Errors(Valid()), Is.Empty);

    [Test]
    public void No_recipient_is_refused() =>
        Assert.That(Errors(new OnionDropOptions()), Has.Some.Contains("at least one journalist public key"));

    [Test]
    public void A_bad_recipient_is_named()
    {
        var o = Valid();
        o.Recipients.Add("odpk1-not-a-key");
        Assert.That(Errors(o), Has.Some.StartsWith("Recipients[1] \"odpk1-not-a-key\" is not a valid public key"));
    }

    [Test]
    public void A_recipient_listed_twice_is_refused_naming_both_entries()
    {
        // Written differently (case, spaces) but the same key: each submission would be sealed to it twice.
        using var other = JournalistKey.Generate();
        var o = Valid();
        var key = o.Recipients[0];
        o.Recipients.Add(other.PublicKey.ToString());
        o.Recipients.Add("  " + key.ToUpperInvariant() + " ");
        var errors = Errors(o);
        Assert.That(errors, Has.Exactly(1).Items);
        Assert.That(errors[0], Does.StartWith($"Recipients[2] \"{key.ToUpperInvariant()[..20]}...\" is the same key as Recipients[0]"));
        Assert.That(errors[0], Does.Not.Contain("\n"));
    }

    [TestCase("0.0.0.0:8080")]
    [TestCase("192.168.1.10:80")]
    [TestCase("[::]:80")]
    [TestCase("example.org:80")]
    [TestCase("8080")]
    [TestCase("127.0.0.1")]
    public void Non_loopback_or_malformed_listen_is_refused(string listen)
    {
        var o = Valid();
        o.Listen = listen;
        Assert.That(Errors(o), Has.Some.StartsWith($"Listen \"{listen}\""));
    }

    [TestCase("127.0.0.1:0")]
    [TestCase("[::1]:8443")]
    [TestCase("localhost:9000")]
    public void Loopback_listen_is_accepted(string listen)
    {
        var o = Valid();
        o.Listen = listen;
        Assert.That(Errors(o), Is.Empty);
    }

    [Test]
    public void Insane_limits_are_refused()
    {
        var o = Valid();
        o.MaxSubmissionBytes = 0;
        o.MaxFiles = 0;
        o.MaxMessageChars = -1;
        o.UploadIdleTimeout = TimeSpan.Zero;
        o.MaxConcurrentUploads = 0;
        var errors = Errors(o);
        Assert.That(errors, Has.Some.StartsWith("MaxSubmissionBytes").And.Some.StartsWith("MaxFiles")
            .And.Some.StartsWith("MaxMessageChars").And.Some.StartsWith("UploadIdleTimeout")
            .And.Some.StartsWith("MaxConcurrentUploads must be between 1 and 10000"));
    }

    [Test]
    public void A_message_limit_beyond_what_the_sealed_format_holds_is_refused()
    {
        // Between the two, a source would have got an error page after sending everything.
        var o = Valid();
        o.MaxMessageChars = SubmissionSealer.MaxMessageChars;
        Assert.That(Errors(o), Is.Empty);
        o.MaxMessageChars = SubmissionSealer.MaxMessageChars + 1;
        Assert.That(Errors(o), Has.Some.StartsWith($"MaxMessageChars must be between 0 and {SubmissionSealer.MaxMessageChars}"));
    }

    [Test]
    public void Retention_mistakes_are_refused_at_start()
    {
        var o = Valid();
        o.Retention.DeleteAfter = OnionDrop.Storage.AcknowledgementQuorum.All;
        o.Retention.KeepDaysAfterAcknowledgement = -1;
        o.Retention.CheckInterval = TimeSpan.FromSeconds(-1);
        Assert.That(Errors(o), Has.Some.StartsWith("Retention: KeepDaysAfterAcknowledgement must be 0 or more")
            .And.Some.StartsWith("Retention:CheckInterval must be between"));
        o.Retention.KeepDaysAfterAcknowledgement = 0;
        Assert.That(Errors(o), Has.Some.StartsWith("Retention: DeleteAfter=All needs the list of Journalists"));
        o.Retention.Journalists = ["alice", "bob"];
        o.Retention.CheckInterval = TimeSpan.FromHours(1);
        Assert.That(Errors(o), Is.Empty);
    }

    [Test]
    public void A_torrc_line_that_the_launched_tor_would_refuse_is_refused_at_start_and_only_when_tor_is_launched()
    {
        var o = Valid();
        o.TorExtraConfig = ["ControlPort 9051"];
        Assert.That(Errors(o), Has.Some.StartsWith("TorExtraConfig line 1: \"ControlPort 9051\""));
        o.Tor = TorMode.None;
        Assert.That(Errors(o), Is.Empty, "no tor is launched, so no torrc is written");
        o.Tor = TorMode.Launch;
        o.TorExtraConfig = [];
        o.TorrcTemplate = "/nonexistent/torrc.template";
        Assert.That(Errors(o), Has.Some.StartsWith("TorrcTemplate: cannot read /nonexistent/torrc.template"));
    }

    [Test]
    public void A_web_socket_path_the_system_tor_cannot_take_is_refused_at_start_and_only_for_the_system_tor()
    {
        // ADD_ONION refuses it when tor is asked (a space, a quote, a non-ASCII character): that exited 1, and systemd
        // restarted the daemon every few seconds. The path is tor's only: the data directory itself may hold a space.
        var o = Valid();
        o.Tor = TorMode.System;
        o.DataDir = "/srv/drop box";
        Assert.That(Errors(o), Has.One.StartsWith("DataDir \"/srv/drop box\" holds a space, which tor cannot read in ADD_ONION"));
        o.WebSocketDirectory = "/run/onion drop";
        Assert.That(Errors(o), Has.One.StartsWith("WebSocketDirectory \"/run/onion drop\" holds a space"));
        o.WebSocketDirectory = "/run/donn\u00e9es";
        Assert.That(Errors(o), Has.One.StartsWith("WebSocketDirectory \"/run/donn\u00e9es\" holds a non-ASCII character"));
        o.WebSocketDirectory = "/run/oniondrop";
        Assert.That(Errors(o), Is.Empty);
        o.WebSocketDirectory = "/run/onion drop";
        o.Tor = TorMode.None;
        Assert.That(Errors(o), Is.Empty, "no tor is given the path");
    }

    [Test]
    public async Task The_daemon_refuses_to_start_on_a_public_address()
    {
        using var dir = new TempDirectory();
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(async () =>
            await TestDaemon.StartAsync(s => s["OnionDrop:Listen"] = "0.0.0.0:0", dataDir: dir.Combine("data")));
        Assert.That(ex!.Message, Does.Contain("not a loopback address"));
    }
}
