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
    [Test]
    public async Task A_stop_with_a_slow_upload_in_flight_ends_in_time_and_keeps_nothing_of_it()
    {
        using var dir = new TempDirectory("oniondrop-stop-");
        using var journalist = new Journalist();
        var data = dir.Combine("data");
        await using var daemon = await DaemonProcess.StartAsync(data, journalist.PublicKey);

        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, daemon.Port));
        const string boundary = "slowboundary";
        await socket.SendAsync(Encoding.ASCII.GetBytes(
            $"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: 10000000\r\n\r\n" +
            $"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"slow.bin\"\r\n\r\n"));
        using var trickling = new CancellationTokenSource();
        var trickle = Task.Run(async () =>
        {
            // 1 KiB every 200 ms: slow, but moving, as over Tor.
            try { while (true) { await socket.SendAsync(new byte[1024], trickling.Token); await Task.Delay(200, trickling.Token); } }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { }
        });
        await Task.Delay(TimeSpan.FromSeconds(2));

        var clock = Stopwatch.StartNew();
        var exit = await daemon.StopAsync(grace: TimeSpan.FromSeconds(60));
        clock.Stop();
        await trickling.CancelAsync();
        await trickle;

        TestContext.Out.WriteLine($"stopped in {clock.Elapsed.TotalSeconds:0.0} s (upload wait {DaemonHost.ShutdownTimeout.TotalSeconds} s)");
        Assert.That(exit, Is.Zero, daemon.Output);
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(25)), "inside the unit's TimeoutStopSec=30s, with room for tor's stop");
        Assert.That(Journalist.BlobFiles(data, "*"), Is.Empty, "nothing of the cut upload kept");
        Assert.That(Journalist.Committed(data), Is.Empty);
    }
}
