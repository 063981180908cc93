using System.Net;
using System.Net.Sockets;
using OnionDrop.Daemon.Web;

namespace OnionDrop.Daemon.Tests;

/// <summary>What a visitor flooding the onion service cheaply can cost the daemon: it must stay bounded and answering.</summary>
public sealed class FloodTests
{
    [Test]
    public async Task Thousands_of_connections_closed_midway_through_their_headers_leave_no_memory_behind()
    {
        // Each connection that has sent a few bytes of its headers holds a 64 KiB receive block. Wiping a returned
        // block whole made its untouched pages resident: 10,000 of them closed took the daemon from 80 to 830 MB.
        const int connections = 5000;
        // Room for them all (four connections per upload place).
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxConcurrentUploads"] = "2000");
        var endpoint = new IPEndPoint(IPAddress.Loopback, daemon.Loopback.Port);
        var fdsBefore = Directory.GetFiles("/proc/self/fd").Length;
        var before = ResidentBytes();
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < connections; i++)
            {
                var socket = await RawHttp.ConnectAsync(endpoint);
                sockets.Add(socket);
                await socket.SendAsync(RawHttp.Ascii("GET / HTTP/1.1\r\nHost: localhost\r\nX-Waiting: "));
            }
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose();
        }
        // Kestrel has closed its ends and given their blocks back.
        await UploadTests.WaitUntil(() => Directory.GetFiles("/proc/self/fd").Length < fdsBefore + 100, seconds: 60);
        await Task.Delay(500);
        var grown = ResidentBytes() - before;
        // About 90 MB now (the connections' own garbage, not yet collected); 370 MB when every block was made resident.
        Assert.That(grown, Is.LessThan(200L << 20), $"resident memory grew by {grown >> 20} MiB");
        using var client = daemon.LoopbackClient();
        using var form = await client.GetAsync("/");
        Assert.That(form.StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [Test]
    public async Task Connections_past_four_per_upload_place_are_closed_at_once_and_served_again_once_some_go()
    {
        // Each connection can hold over a megabyte (pipelined requests whose answers are never read): with no bound,
        // 1,000 of them took the daemon to 1.3 GB.
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxConcurrentUploads"] = "2");
        var endpoint = new IPEndPoint(IPAddress.Loopback, daemon.Loopback.Port);
        var request = RawHttp.Ascii("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
        var held = new List<Socket>();
        try
        {
            for (var i = 0; i < 8; i++)
            {
                var socket = await RawHttp.ConnectAsync(endpoint);
                held.Add(socket);
                await socket.SendAsync(request);
                var answer = await RawHttp.ReadResponseAsync(socket, TimeSpan.FromSeconds(20));
                Assert.That(answer.Status, Is.EqualTo(200), $"connection {i + 1} of 8 is served");
            }
            var refused = await RawHttp.SendAsync(endpoint, request, TimeSpan.FromSeconds(20));
            Assert.That(refused.Status, Is.Null, "a ninth is closed unanswered");
            Assert.That(refused.Closed, Is.True, "closed at once, not left waiting");
        }
        finally
        {
            foreach (var socket in held) socket.Dispose();
        }
        // Kestrel notices the closed ones in a moment: a connection is then served again.
        RawResponse again = null!;
        for (var attempt = 0; attempt < 100 && again?.Status != 200; attempt++)
        {
            if (attempt > 0) await Task.Delay(100);
            again = await RawHttp.SendAsync(endpoint, request, TimeSpan.FromSeconds(20));
        }
        Assert.That(again.Status, Is.EqualTo(200));
        Assert.That(daemon.BlobFiles(), Is.Empty);
    }

    [Test]
    public void A_returned_block_is_wiped_wherever_it_was_written()
    {
        using var pool = new LargeBlockMemoryPool();
        var lease = pool.Rent();
        var block = lease.Memory;
        foreach (var at in new[] { 0, 4095, 4096, 30_000, LargeBlockMemoryPool.BlockSize - 1 }) block.Span[at] = 0x5A;
        lease.Dispose();
        using var again = pool.Rent(); // the same block, kept for reuse
        Assert.That(again.Memory.ToArray().All(b => b == 0), "no byte of the previous request left");
    }

    private static long ResidentBytes() =>
        long.Parse(File.ReadLines("/proc/self/status").Single(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
            .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
}
