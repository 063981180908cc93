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

    [Test]
    public async Task A_listen_port_already_taken_is_said_in_one_line_at_once()
    {
        using var dir = new TempDirectory("oniondrop-hosting-");
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        var serve = await Oniondrop.RunAsync(["serve", "--data-dir", dir.Combine("data"), "--recipient", key, "--tor", "none", "--listen", $"127.0.0.1:{port}"],
            TimeSpan.FromSeconds(30));
        Assert.That(serve.ExitCode, Is.EqualTo(1), serve.ToString());
        Assert.That(serve.Stderr.Trim(), Is.EqualTo($"oniondrop serve: 127.0.0.1:{port} is already in use (another oniondrop serve, or another program): choose another --listen port"));
    }
}
