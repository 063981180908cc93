using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

/// <summary>How `oniondrop serve` sits in the system it runs on, beyond what it serves.</summary>
public class ServeHostingTests
{
    [Test]
    public async Task Serve_started_in_the_root_directory_as_systemd_does_watches_no_files()
    {
        // The host's default appsettings.json watcher, rooted at the working directory, once put an
        // inotify watch on every directory of the system when that directory was "/".
        using var dir = new TempDirectory("oniondrop-hosting-");
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        await using var daemon = await DaemonProcess.StartAsync(dir.Combine("data"), key, workingDirectory: "/");

        var inotify = Directory.GetFiles($"/proc/{daemon.Pid}/fd")
            .Select(fd => { try { return new FileInfo(fd).LinkTarget; } catch (IOException) { return null; } })
            .Count(target => target == "anon_inode:inotify");
        Assert.That(inotify, Is.Zero, "inotify instances open in the daemon");
        using var http = new HttpClient();
        Assert.That((await http.GetAsync(daemon.BaseAddress)).IsSuccessStatusCode, "the daemon serves its form");
    }
}
