using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// A stop (SIGTERM, as systemd sends) while a source's upload is still trickling in over Tor: the daemon waits
/// for it a bounded time, then cuts it (keeping nothing of it), stops, and exits 0, well inside the unit's
/// TimeoutStopSec=30s. (Found by a chaos run: with the host's default 30 s wait, such a stop ran past it and
/// ended in a SIGKILL of the daemon and its tor.)
/// </summary>
[Category("EndToEnd")]
public sealed class StopTests
{
    /// <summary>
    /// scripts/oniondrop.service's TimeoutStopSec: the test stops the daemon as systemd would, SIGKILL past it. No
    /// tighter wall-clock limit: on a loaded machine it would fail for the machine, not the daemon.
    /// </summary>
    private static readonly TimeSpan UnitStopTimeout = TimeSpan.FromSeconds(int.Parse(
        System.Text.RegularExpressions.Regex.Match(File.ReadAllText(Path.Combine(RepoPaths.Root, "scripts", "oniondrop.service")), @"(?m)^TimeoutStopSec=(\d+)s$").Groups[1].Value));

    [Test]
    public async Task A_stop_with_a_slow_upload_in_flight_ends_in_time_and_keeps_nothing_of_it()
    {
        using var dir = new TempDirectory("oniondrop-stop-");
        using var journalist = new Journalist();
        var data = dir.Combine("data");
        await using var daemon = await DaemonProcess.StartAsync(data, journalist.PublicKey);

        await using var upload = await SlowUpload.StartAsync(daemon.Port);
        await WaitForPartialAsync(data, daemon);

        var clock = Stopwatch.StartNew();
        var exit = await daemon.StopAsync(grace: UnitStopTimeout);
        clock.Stop();

        TestContext.Out.WriteLine($"stopped in {clock.Elapsed.TotalSeconds:0.0} s (upload wait {DaemonHost.ShutdownTimeout.TotalSeconds} s)");
        Assert.That(exit, Is.Zero, $"not a clean exit within the unit's TimeoutStopSec (a SIGKILL then, as systemd's)\n{daemon.Output}");
        Assert.That(Journalist.BlobFiles(data, "*"), Is.Empty, "nothing of the cut upload kept");
        Assert.That(Journalist.Committed(data), Is.Empty);
    }

    /// <summary>
    /// The same stop with the daemon's own tor, frozen (kill -STOP: it answers nothing, not even SIGNAL SHUTDOWN):
    /// the upload's wait and tor's stop together must still fit in TimeoutStopSec=30s, and no tor may be left.
    /// (Found by a chaos run: tor's stop waited 10 s for SHUTDOWN's answer and then 10 s more for the exit: 35 s in all.)
    /// </summary>
    [Test]
    public async Task A_stop_with_a_frozen_launched_tor_and_a_slow_upload_ends_in_time_and_leaves_no_tor()
    {
        using var dir = new TempDirectory("oniondrop-stop-");
        using var journalist = new Journalist();
        var data = dir.Combine("data");
        var settings = new Dictionary<string, object> { ["TorExtraConfig"] = new[] { "DisableNetwork 1" } };
        await using var daemon = await DaemonProcess.StartAsync(data, journalist.PublicKey, tor: "launch", settings: settings);
        var tor = PosixProcess.Children(daemon.Pid).Single(p => PosixProcess.Name(p) == "tor");

        await using var upload = await SlowUpload.StartAsync(daemon.Port);
        await WaitForPartialAsync(data, daemon);
        PosixProcess.Signal(tor, PosixProcess.SIGSTOP);
        try
        {
            var clock = Stopwatch.StartNew();
            var exit = await daemon.StopAsync(grace: UnitStopTimeout);
            clock.Stop();

            TestContext.Out.WriteLine($"stopped in {clock.Elapsed.TotalSeconds:0.0} s (upload wait {DaemonHost.ShutdownTimeout.TotalSeconds} s, then tor's 5 s)");
            Assert.That(exit, Is.Zero, $"not a clean exit within the unit's TimeoutStopSec (a SIGKILL then, as systemd's)\n{daemon.Output}");
            Assert.That(PosixProcess.IsAlive(tor), Is.False, "the frozen tor was killed, not left behind");
            Assert.That(File.ReadAllText(Path.Combine(data, "status.json")), Does.Contain("\"stopped\""), "the status file's last word");
        }
        finally { PosixProcess.Signal(tor, PosixProcess.SIGCONT); }
    }

    /// <summary>
    /// Until the daemon is writing the slow upload (its .partial blob is there): a stop before that would find no
    /// upload in flight, and "nothing kept" would prove nothing.
    /// </summary>
    private static async Task WaitForPartialAsync(string data, DaemonProcess daemon)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (Journalist.BlobFiles(data, "*.partial").Length == 0)
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"the slow upload never reached the daemon's store\n{daemon.Output}");
            await Task.Delay(100);
        }
    }

    /// <summary>A source's upload trickling in (1 KiB every 200 ms: slow, but moving, as over Tor) until disposed.</summary>
    private sealed class SlowUpload : IAsyncDisposable
    {
        private readonly Socket _socket;
        private readonly CancellationTokenSource _trickling = new();
        private readonly Task _trickle;

        private SlowUpload(Socket socket)
        {
            _socket = socket;
            _trickle = Task.Run(async () =>
            {
                try { while (true) { await socket.SendAsync(new byte[1024], _trickling.Token); await Task.Delay(200, _trickling.Token); } }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
            });
        }

        public static async Task<SlowUpload> StartAsync(int port)
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
            const string boundary = "slowboundary";
            await socket.SendAsync(Encoding.ASCII.GetBytes(
                $"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n" +
                $"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"slow.bin\"\r\n\r\n"));
            return new SlowUpload(socket);
        }

        public async ValueTask DisposeAsync()
        {
            await _trickling.CancelAsync();
            await _trickle;
            _socket.Dispose();
            _trickling.Dispose();
        }
    }
}
