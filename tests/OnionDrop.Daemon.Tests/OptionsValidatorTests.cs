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
        var errors = Errors(o);
        Assert.That(errors, Has.Some.StartsWith("MaxSubmissionBytes").And.Some.StartsWith("MaxFiles")
            .And.Some.StartsWith("MaxMessageChars").And.Some.StartsWith("UploadIdleTimeout"));
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
