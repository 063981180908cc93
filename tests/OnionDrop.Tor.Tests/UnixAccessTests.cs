using OnionDrop.Testing;

namespace OnionDrop.Tor.Tests;

/// <summary>
/// The system-tor check: can tor's user connect to the web socket? Real directories with real modes and owners,
/// judged for Debian's debian-tor account (the kernel's own verdict is in OnionDrop.Daemon.Tests' SystemTorTests).
/// </summary>
public class UnixAccessTests
{
    private static UnixAccount DebianTor =>
        UnixAccount.Find(int.Parse(File.ReadLines("/etc/passwd").Select(l => l.Split(':')).Single(f => f[0] == "debian-tor")[2]))
        ?? throw new AssertionException("no debian-tor account: install Debian's tor package (scripts/setup-deps)");

    private static async Task<string> Dir(TempDirectory tmp, string name, string mode, string group)
    {
        var dir = tmp.Combine(name);
        Directory.CreateDirectory(dir);
        var r = await ChildProcess.RunAsync("chgrp", [group, dir]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.ToString());
        File.SetUnixFileMode(dir, (UnixFileMode)Convert.ToInt32(mode, 8));
        return Path.Combine(dir, "web.sock");
    }

    private static TempDirectory Searchable()
    {
        var tmp = new TempDirectory();
        File.SetUnixFileMode(tmp.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        return tmp;
    }

    [Test]
    public async Task A_group_directory_and_a_group_socket_are_reachable()
    {
        using var tmp = Searchable();
        var tor = DebianTor;
        var socket = await Dir(tmp, "run", "2710", "debian-tor");
        Assert.That(UnixAccess.WhyUnreachable(tor, socket, socketOwner: 0, socketGroup: UnixAccount.GroupId("debian-tor")), Is.Null);
    }

    [TestCase("700", "debian-tor", "debian-tor", "which debian-tor may not enter")]   // the old layout: the 0700 data directory
    [TestCase("2700", "debian-tor", "debian-tor", "which debian-tor may not enter")]  // group without search permission
    [TestCase("2710", "debian-tor", null, "is 0600")]                               // the socket shared with no group
    [TestCase("2710", "debian-tor", "root", "which debian-tor is not in")]          // shared with another group
    public async Task Unreachable_layouts_say_why(string mode, string dirGroup, string? socketGroup, string why)
    {
        using var tmp = Searchable();
        var socket = await Dir(tmp, "run", mode, dirGroup);
        var gid = socketGroup is null ? (int?)null : UnixAccount.GroupId(socketGroup);
        Assert.That(UnixAccess.WhyUnreachable(DebianTor, socket, socketOwner: 0, socketGroup: gid), Does.Contain(why));
    }

    [Test]
    public async Task An_ancestor_tor_may_not_enter_is_named()
    {
        using var tmp = new TempDirectory(); // 0700, root's
        var socket = await Dir(tmp, "run", "2710", "debian-tor");
        Assert.That(UnixAccess.WhyUnreachable(DebianTor, socket, 0, UnixAccount.GroupId("debian-tor")),
            Does.StartWith(tmp.Path + " is 0700 root:root, which debian-tor may not enter"));
    }

    [Test]
    public async Task The_socket_s_owner_needs_no_group()
    {
        using var tmp = Searchable();
        var tor = DebianTor;
        var socket = await Dir(tmp, "run", "711", "root");
        Assert.That(UnixAccess.WhyUnreachable(tor, socket, socketOwner: tor.Uid, socketGroup: null), Is.Null);
    }

    [Test]
    public void Of_reads_owner_group_and_mode()
    {
        using var tmp = new TempDirectory();
        Assert.That(UnixAccess.Of(tmp.Path), Is.EqualTo(new UnixAccess.Stat(0, 0, (UnixFileMode)Convert.ToInt32("700", 8))));
        Assert.That(UnixAccess.Of("/tmp").Mode, Is.EqualTo((UnixFileMode)Convert.ToInt32("1777", 8)));
    }
}
