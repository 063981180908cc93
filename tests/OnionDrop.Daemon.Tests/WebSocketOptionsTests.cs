using OnionDrop.Daemon.Hosting;
using OnionDrop.Sealing;

namespace OnionDrop.Daemon.Tests;

/// <summary>WebSocketDirectory and WebSocketGroup: the data directory is never shared, and the group must exist.</summary>
public sealed class WebSocketOptionsTests
{
    private static OnionDropOptions Options(string? dir, string? group)
    {
        using var key = JournalistKey.Generate();
        return new OnionDropOptions { Recipients = [key.PublicKey.ToString()], DataDir = "/var/lib/oniondrop", WebSocketDirectory = dir, WebSocketGroup = group };
    }

    private static string[] Errors(OnionDropOptions o) =>
        new OnionDropOptionsValidator().Validate(null, o) is { Failed: true } r ? r.Failures!.ToArray() : [];

    [TestCase(null, null)]
    [TestCase("/run/oniondrop", null)]
    [TestCase("/run/oniondrop", "debian-tor")]
    public void Accepted(string? dir, string? group) => Assert.That(Errors(Options(dir, group)), Is.Empty);

    [TestCase(null, "debian-tor", "needs a WebSocketDirectory of its own")]
    [TestCase("/var/lib/oniondrop/", "debian-tor", "needs a WebSocketDirectory of its own")]
    [TestCase("/run/oniondrop", "no-such-group-here", "is not a group in /etc/group")]
    public void Refused(string? dir, string group, string why) =>
        Assert.That(Errors(Options(dir, group)), Has.One.Contains(why).And.Contains("WebSocketGroup"));

    [Test]
    public void The_socket_follows_the_directory()
    {
        Assert.That(Web.WebListeners.SocketPath(Options(null, null)), Is.EqualTo("/var/lib/oniondrop/web.sock"));
        Assert.That(Web.WebListeners.SocketPath(Options("/run/oniondrop", "debian-tor")), Is.EqualTo("/run/oniondrop/web.sock"));
        Assert.That(Tor.TorSetup.SupervisorOptions(Options("/run/oniondrop", "debian-tor")).WebSocket, Is.EqualTo("/run/oniondrop/web.sock"));
        Assert.That(Tor.TorSetup.SupervisorOptions(Options("/run/oniondrop", "debian-tor")).WebSocketGroupId, Is.EqualTo(OnionDrop.Tor.UnixAccount.GroupId("debian-tor")));
    }
}
