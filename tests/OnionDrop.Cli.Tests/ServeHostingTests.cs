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
    public async Task A_stop_while_tor_is_starting_is_a_clean_stop()
    {
        // systemctl stop (SIGTERM) in the seconds tor takes to start: exit 0, as after any asked-for stop, so that
        // systemd does not mark the unit failed; and no tor left. The "tor" here never gets as far as its control socket.
        using var dir = new TempDirectory("oniondrop-hosting-");
        var slowTor = dir.Combine("slow-tor");
        File.WriteAllText(slowTor, "#!/bin/sh\nexec sleep 60\n");
        File.SetUnixFileMode(slowTor, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        var psi = Oniondrop.StartInfo("serve", "--data-dir", dir.Combine("data"), "--recipient", key, "--tor", "launch");
        psi.Environment["ONIONDROP_TOR_PATH"] = slowTor;
        using var serve = System.Diagnostics.Process.Start(psi)!;
        var stderr = serve.StandardError.ReadToEndAsync();
        var stdout = new System.Text.StringBuilder();
        string? line;
        while ((line = await serve.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(60))) is not null && !line.Contains("Started tor (pid"))
            stdout.AppendLine(line);
        Assert.That(line, Is.Not.Null, "the daemon started its tor");
        var tor = int.Parse(System.Text.RegularExpressions.Regex.Match(line!, @"pid (\d+)").Groups[1].Value);
        var rest = serve.StandardOutput.ReadToEndAsync();

        PosixProcess.Signal(serve.Id, PosixProcess.SIGTERM);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await serve.WaitForExitAsync(cts.Token);
        stdout.Append(await rest);
        Assert.That(serve.ExitCode, Is.Zero, await stderr);
        Assert.That((await stderr).Trim(), Is.EqualTo("oniondrop serve: stopped while starting (before tor was ready)"));
        Assert.That(PosixProcess.IsAlive(tor), Is.False, "no tor left");
        // The journal takes both streams: the host once logged "Hosting failed to start" here, with the
        // TaskCanceledException's stack trace, as if the stop were a failure.
        var journal = stdout + "\n" + await stderr;
        Assert.That(journal, Does.Not.Contain("Exception").And.Not.Contain("fail:").And.Not.Match(@"(?m)^\s+at "), journal);
    }

    [Test]
    public async Task A_tor_that_fails_at_start_is_still_logged_in_full()
    {
        // The other side of the test above: only a stop's cancellation is left out of the host's log. A real failure
        // to start keeps the host's report, exception and stack trace, for the operator's journal.
        using var dir = new TempDirectory("oniondrop-hosting-");
        var brokenTor = dir.Combine("broken-tor");
        File.WriteAllText(brokenTor, "#!/bin/sh\nexit 3\n");
        File.SetUnixFileMode(brokenTor, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        var psi = Oniondrop.StartInfo("serve", "--data-dir", dir.Combine("data"), "--recipient", key, "--tor", "launch");
        psi.Environment["ONIONDROP_TOR_PATH"] = brokenTor;
        var serve = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(60));
        Assert.That(serve.ExitCode, Is.EqualTo(1), serve.ToString());
        Assert.That(serve.Stdout, Does.Contain("Hosting failed to start").And.Contain("TorStartException").And.Match(@"(?m)^\s+at "), serve.ToString());
    }

    /// <summary>
    /// A damaged catalog.db: one line naming it and the way out, and exit 2, which the unit's RestartPreventExitStatus
    /// keeps from restarting every RestartSec to say the same (it said "oniondrop serve: page type must be collection
    /// page", exit 1).
    /// </summary>
    [Test]
    public async Task A_damaged_catalog_is_said_in_one_line_and_not_restarted()
    {
        using var dir = new TempDirectory("oniondrop-hosting-");
        var data = dir.Combine("data");
        using var journalist = OnionDrop.Sealing.JournalistKey.Generate();
        var key = journalist.PublicKey.ToString();
        await using (var daemon = await DaemonProcess.StartAsync(data, key))
        {
            using var client = new UploadClient(daemon.BaseAddress);
            Assert.That((await client.SendAsync(new SeededUpload("before", 1, 1000), UploadPace.Fast)).Receipted, Is.True, daemon.Output);
            Assert.That(await daemon.StopAsync(), Is.Zero, daemon.Output);
        }
        using (var catalog = File.OpenWrite(Path.Combine(data, "catalog.db"))) catalog.SetLength(8192);

        var serve = await Oniondrop.RunAsync(["serve", "--data-dir", data, "--recipient", key, "--tor", "none"], TimeSpan.FromSeconds(60));

        Assert.That(serve.ExitCode, Is.EqualTo(2), serve.ToString());
        var last = serve.Stderr.Trim().Split('\n')[^1];
        Assert.That(last, Does.StartWith($"oniondrop serve: {Path.Combine(data, "catalog.db")} is damaged")
            .And.Contain("1 sealed submission(s), none deleted").And.Contain("oniondrop recover"));
        Assert.That(Directory.GetFiles(Path.Combine(data, "blobs"), "*.sealed"), Has.Length.EqualTo(1));
    }

    /// <summary>
    /// The data directory deleted under the running daemon: it stops (exit 1, so systemd starts it again) with one
    /// line saying so. It said "Could not find the drive '/tmp/...'. The drive might not be ready or might not be mapped."
    /// </summary>
    [Test]
    public async Task A_data_directory_deleted_under_the_daemon_is_said_as_such()
    {
        using var dir = new TempDirectory("oniondrop-hosting-");
        var data = dir.Combine("data");
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        await using var daemon = await DaemonProcess.StartAsync(data, key);

        // Moved away in one step: a recursive delete raced the daemon's own writes ("Directory not empty"). Its
        // path is gone all the same; the moved tree goes with the temp directory once the daemon has exited.
        Directory.Move(data, dir.Combine("gone"));
        for (var waited = 0; !daemon.HasExited && waited < 300; waited++) await Task.Delay(100);

        Assert.That(daemon.HasExited, daemon.Output);
        Assert.That(await daemon.StopAsync(), Is.EqualTo(1), daemon.Output);
        Assert.That(daemon.Output.Trim().Split('\n')[^1],
            Does.StartWith($"oniondrop serve: the data directory {data} disappeared while the daemon ran"), daemon.Output);
    }

    /// <summary>
    /// A second `serve` on the data directory of a running daemon (the operator trying it by hand while the service
    /// runs) is refused once daemon.lock stays held. Before it was, Kestrel's set-up had already deleted web.sock as
    /// a dead daemon's leftover: the running daemon's onion service lost its socket for good (tor could no longer
    /// reach the form) while everything else looked healthy.
    /// </summary>
    [Test]
    public async Task A_second_serve_on_a_running_daemons_data_directory_leaves_its_socket_alone()
    {
        using var dir = new TempDirectory("oniondrop-hosting-");
        var data = dir.Combine("data");
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        await using var daemon = await DaemonProcess.StartAsync(data, key);
        var socket = Path.Combine(data, "web.sock");
        async Task<string> InodeAsync() => (await ChildProcess.RunAsync("stat", ["-c", "%i", socket])).Stdout.Trim();
        var before = await InodeAsync();

        var second = await Oniondrop.RunAsync(["serve", "--data-dir", data, "--recipient", key, "--tor", "none"], TimeSpan.FromSeconds(90));

        Assert.That(second.ExitCode, Is.EqualTo(1), second.ToString());
        Assert.That(second.Stderr.Trim().Split('\n')[^1], Is.EqualTo($"oniondrop serve: {data} is in use by another oniondrop daemon (it holds daemon.lock)"));
        Assert.That(Path.Exists(socket), "the running daemon's web.sock is still there");
        Assert.That(await InodeAsync(), Is.EqualTo(before), "the same socket, not another");
        using var client = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        await client.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(socket));
        Assert.That(daemon.HasExited, Is.False, daemon.Output);
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

    /// <summary>A data directory in <paramref name="dir"/> a daemon stored one submission in, stopped since; and its recipient.</summary>
    private static async Task<(string Data, string Key)> DataDirectoryWithOneSubmissionAsync(TempDirectory dir)
    {
        var data = dir.Combine("data");
        var key = OnionDrop.Sealing.JournalistKey.Generate().PublicKey.ToString();
        await using var daemon = await DaemonProcess.StartAsync(data, key);
        using var client = new UploadClient(daemon.BaseAddress);
        Assert.That((await client.SendAsync(new SeededUpload("before", 1, 1000), UploadPace.Fast)).Receipted, Is.True, daemon.Output);
        Assert.That(await daemon.StopAsync(), Is.Zero, daemon.Output);
        return (data, key);
    }

    /// <summary>
    /// A part of the daemon that fails while tor is still starting is a failure, not the stop the operator asked for:
    /// exit 1 with its line, so that systemd (Restart=on-failure) starts it again. It said "stopped while starting
    /// (before tor was ready)" and exited 0, and the unit stayed down as if stopped on purpose. The part here is
    /// retention, the one that runs before tor is ready, given an entry whose deletion day is not a date.
    /// </summary>
    [Test]
    public async Task A_part_that_fails_while_tor_is_starting_is_a_failure_not_a_stop()
    {
        using var dir = new TempDirectory("oniondrop-hosting-");
        var (data, key) = await DataDirectoryWithOneSubmissionAsync(dir);
        using (var catalog = new LiteDB.LiteDatabase(Path.Combine(data, "catalog.db")))
        {
            var submissions = catalog.GetCollection("submissions");
            var entry = submissions.FindAll().Single();
            entry["state"] = "Acknowledged";
            entry["deleteOn"] = "not a day";
            submissions.Update(entry);
        }
        var slowTor = dir.Combine("slow-tor");
        File.WriteAllText(slowTor, "#!/bin/sh\nexec sleep 60\n");
        File.SetUnixFileMode(slowTor, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var psi = Oniondrop.StartInfo("serve", "--data-dir", data, "--recipient", key, "--tor", "launch");
        psi.Environment["ONIONDROP_TOR_PATH"] = slowTor;

        var serve = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(60));

        Assert.That(serve.ExitCode, Is.EqualTo(1), serve.ToString());
        Assert.That(serve.Stderr.Trim().Split('\n')[^1], Does.StartWith("oniondrop serve: RetentionService failed:"), serve.ToString());
        Assert.That(serve.Stderr, Does.Not.Contain("stopped while starting"), serve.ToString());
    }

    /// <summary>
    /// A sealed file the daemon may not touch (a restore that left it root's, here made immutable) is retention's
    /// error to log, as a full disk is: the drop box keeps taking submissions. The daemon stopped at start instead
    /// ("Access to the path '.../blobs/ID.sealed' is denied", from setting its day's times), before tor was ready.
    /// </summary>
    [Test]
    public async Task A_sealed_file_the_daemon_may_not_touch_does_not_stop_it()
    {
        using var dir = new TempDirectory("oniondrop-hosting-");
        var (data, key) = await DataDirectoryWithOneSubmissionAsync(dir);
        var blob = Directory.GetFiles(Path.Combine(data, "blobs"), "*.sealed").Single();
        var chattr = await ChildProcess.RunAsync("chattr", ["+i", blob]);
        Assume.That(chattr.ExitCode, Is.Zero, "needs chattr +i (root, a file system with attributes): " + chattr);
        try
        {
            await using var daemon = await DaemonProcess.StartAsync(data, key);
            for (var waited = 0; !daemon.Output.Contains("retention:") && !daemon.HasExited && waited < 100; waited++) await Task.Delay(100);
            Assert.That(daemon.HasExited, Is.False, daemon.Output);
            Assert.That(daemon.Output, Does.Contain($"retention: Access to the path '{blob}' is denied"));
            using var client = new UploadClient(daemon.BaseAddress);
            Assert.That((await client.SendAsync(new SeededUpload("after", 2, 1000), UploadPace.Fast)).Receipted, Is.True, daemon.Output);
            Assert.That(await daemon.StopAsync(), Is.Zero, daemon.Output);
        }
        finally { await ChildProcess.RunAsync("chattr", ["-i", blob]); }
    }
}
