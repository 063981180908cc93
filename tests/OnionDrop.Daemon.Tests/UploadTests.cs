using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace OnionDrop.Daemon.Tests;

/// <summary>Uploads through the real Kestrel, opened with the journalist's key: what arrives is what was sent.</summary>
public sealed class UploadTests
{
    private static (string Name, byte[] Content)[] SampleFiles() =>
    [
        ("rapport annuel 2025.pdf", RandomNumberGenerator.GetBytes(300_000)),
        ("notes.txt", Encoding.UTF8.GetBytes("compte rendu de la réunion\nligne 2\n")),
        ("empty.bin", []),
        ("表格.xlsx", RandomNumberGenerator.GetBytes(70_000)),
    ];

    private const string Message = "Bonjour,\r\nthese show the contract was signed before the tender closed. — Un lecteur ✉";

    [TestCase("unix")]
    [TestCase("loopback")]
    public async Task Upload_is_sealed_and_opens_to_identical_files_and_message(string listener)
    {
        await using var daemon = await TestDaemon.StartAsync();
        using var client = listener == "unix" ? daemon.SocketClient() : daemon.LoopbackClient();
        var files = SampleFiles();
        using var form = new MultipartFormDataContent();
        foreach (var (name, content) in files)
        {
            var part = new ByteArrayContent(content);
            part.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(part, "files", name);
        }
        form.Add(new StringContent(Message, Encoding.UTF8), "message");

        using var response = await client.PostAsync("/?lang=en", form);
        var html = await response.Content.ReadAsStringAsync();

        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), html);
        var record = daemon.Store.ListCommitted().Single();
        Assert.That(html, Does.Contain(record.Id), "the receipt shows the submission's reference");
        Assert.That(html, Does.Contain("Files received: 4"));
        Assert.That(html, Does.Not.Contain("rapport annuel"), "the receipt never echoes filenames");
        Assert.That(html, Does.Not.Contain("?lang=fr"), "no language link on the receipt: it would load the form, and the reference would be gone");

        var opened = daemon.OpenAll().Single();
        Assert.That(opened.Reference, Is.EqualTo(record.Id));
        Assert.That(opened.Message, Is.EqualTo(Message));
        Assert.That(opened.Files.Select(f => f.OriginalName), Is.EqualTo(files.Select(f => f.Name)));
        for (var i = 0; i < files.Length; i++)
        {
            var bytes = await File.ReadAllBytesAsync(Path.Combine(opened.Directory, opened.Files[i].SafeName));
            Assert.That(bytes, Is.EqualTo(files[i].Content), files[i].Name);
        }
        Assert.That(daemon.Counters.Received, Is.EqualTo(1));
    }

    [Test]
    public async Task Message_only_and_files_only_submissions_are_accepted_and_an_empty_one_is_refused()
    {
        await using var daemon = await TestDaemon.StartAsync();
        using var client = daemon.LoopbackClient();

        // What a browser sends when no file was chosen: an empty file part with an empty filename.
        var messageOnly = new Multipart().File("", []).Field("message", "only words").ToContent();
        using (var r = await client.PostAsync("/", messageOnly))
        {
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain("Files received: none").And.Contain("Message received: yes"));
        }

        var fileOnly = new Multipart().File("a.txt", "x"u8.ToArray()).Field("message", "").ToContent();
        using (var r = await client.PostAsync("/", fileOnly)) Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));

        var nothing = new Multipart().File("", []).Field("message", "  \r\n ").ToContent();
        using (var r = await client.PostAsync("/", nothing))
        {
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
            Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain("Nothing to send"));
        }

        var opened = daemon.OpenAll();
        Assert.That(opened, Has.Count.EqualTo(2));
        Assert.That(opened.Select(o => o.Files.Count), Is.EquivalentTo(new[] { 0, 1 }));
        Assert.That(daemon.BlobFiles().Where(f => !f.EndsWith(".sealed")), Is.Empty, "no partial left behind");
    }

    [Test]
    public async Task An_empty_submission_is_not_told_that_its_message_was_lost()
    {
        await using var daemon = await TestDaemon.StartAsync();
        using var client = daemon.LoopbackClient();
        foreach (var lang in new[] { "en", "fr" })
        {
            using var r = await client.PostAsync($"/?lang={lang}", new Multipart().File("", []).Field("message", "").ToContent());
            var html = await r.Content.ReadAsStringAsync();
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
            Assert.That(html, Does.Contain(lang == "en" ? "Nothing to send" : "Rien à envoyer"));
            Assert.That(html, Does.Not.Contain("Nothing from this attempt was kept").And.Not.Contain("Rien de cette tentative"), "there was no message to lose");
        }
    }

    [Test]
    public async Task The_same_form_sent_twice_is_stored_once_and_answered_with_the_same_reference()
    {
        // Refresh, Back then Forward, or "Try again" on the receipt sends the same POST again, token included.
        await using var daemon = await TestDaemon.StartAsync();
        using var client = daemon.LoopbackClient();
        var form = await client.GetStringAsync("/?lang=en");
        var token = System.Text.RegularExpressions.Regex.Match(form, "<input type=\"hidden\" name=\"once\" value=\"([0-9a-f]+)\">").Groups[1].Value;
        Assert.That(token, Has.Length.EqualTo(32), "each form carries a random one-time token");
        Assert.That(await client.GetStringAsync("/?lang=en"), Does.Not.Contain(token), "a new one for each form");

        var body = new Multipart().Field("once", token).File("report.pdf", RandomNumberGenerator.GetBytes(200_000)).Field("message", "twice?");
        string first, second;
        using (var r = await client.PostAsync("/?lang=en", body.ToContent())) first = await r.Content.ReadAsStringAsync();
        using (var r = await client.PostAsync("/?lang=en", body.ToContent()))
        {
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));
            second = await r.Content.ReadAsStringAsync();
        }
        var stored = daemon.Store.ListCommitted().Single();
        Assert.That(first, Does.Contain(stored.Id).And.Not.Contain("had already arrived"));
        Assert.That(second, Does.Contain(stored.Id).And.Contain("had already arrived"));
        Assert.That(second, Does.Contain("Files received: 1"));
        Assert.That(daemon.BlobFiles(), Has.Length.EqualTo(1), "the repeat left nothing on disk");

        // Another form (another token) is another submission, and so is a client that sends none.
        using (var r = await client.PostAsync("/", new Multipart().Field("once", new string('a', 32)).Field("message", "other").ToContent()))
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var r = await client.PostAsync("/", new Multipart().Field("message", "no token").ToContent()))
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var r = await client.PostAsync("/", new Multipart().Field("message", "no token").ToContent()))
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK));
        Assert.That(daemon.Store.ListCommitted(), Has.Count.EqualTo(4));
        Assert.That(daemon.Counters.Received, Is.EqualTo(4), "a repeat is not counted as received twice");
    }

    [Test]
    public async Task Over_the_limits_gets_a_friendly_413_and_stores_nothing()
    {
        await using var daemon = await TestDaemon.StartAsync(s =>
        {
            s["OnionDrop:MaxSubmissionBytes"] = "100000";
            s["OnionDrop:MaxFiles"] = "3";
            s["OnionDrop:MaxMessageChars"] = "50";
        });
        using var client = daemon.LoopbackClient();

        var tooBig = new Multipart().File("a.bin", new byte[60_000]).File("b.bin", new byte[60_000]);
        var tooMany = new Multipart().File("1", [1]).File("2", [2]).File("3", [3]).File("4", [4]);
        var tooLong = new Multipart().Field("message", new string('m', 51));
        var cases = new (Multipart Body, string Expect)[]
        {
            (tooBig, "Too large"),
            (tooMany, "Too many files"),
            (tooLong, "Message too long"),
        };
        foreach (var (body, expect) in cases)
        {
            using var r = await client.PostAsync("/", body.ToContent());
            var html = await r.Content.ReadAsStringAsync();
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.RequestEntityTooLarge), expect);
            Assert.That(html, Does.Contain(expect).And.Contain("Nothing from this attempt was kept"));
        }

        // Exactly at the limits is fine; a 50-character message with line breaks counts them once, as the browser does.
        var atLimit = new Multipart().File("1", new byte[50_000]).File("2", new byte[50_000]).Field("message", string.Concat(Enumerable.Repeat("abcd\r\n", 10)));
        using (var r = await client.PostAsync("/", atLimit.ToContent()))
            Assert.That(r.StatusCode, Is.EqualTo(HttpStatusCode.OK), await r.Content.ReadAsStringAsync());

        Assert.That(daemon.Store.ListCommitted(), Has.Count.EqualTo(1));
        Assert.That(daemon.BlobFiles(), Has.Length.EqualTo(1), "only the committed blob is on disk");
        Assert.That(daemon.Counters.Refused, Is.EqualTo(3));
    }

    [Test]
    public async Task A_declared_length_over_the_limit_is_refused_before_reading_the_body()
    {
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxSubmissionBytes"] = "100000");
        var endpoint = new IPEndPoint(IPAddress.Loopback, daemon.Loopback.Port);
        var head = "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=x\r\nContent-Length: 999999999\r\n\r\n";
        var response = await RawHttp.SendAsync(endpoint, RawHttp.Ascii(head));
        Assert.That(response.Status, Is.EqualTo(413), response.Head);
        Assert.That(response.Body, Does.Contain("Too large"));
        Assert.That(daemon.BlobFiles(), Is.Empty);
    }

    [Test]
    public async Task A_slow_but_moving_upload_succeeds_and_a_stalled_one_is_dropped_storing_nothing()
    {
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:UploadIdleTimeout"] = "00:00:04");
        var endpoint = new IPEndPoint(IPAddress.Loopback, daemon.Loopback.Port);
        // Slow: a piece every second for ~10 s in all, well past the 4 s idle timeout (with room for a loaded machine).
        var slow = new Multipart("slowboundary").File("slow.bin", RandomNumberGenerator.GetBytes(4000)).Field("message", "slowly").Build();
        using (var socket = await RawHttp.ConnectAsync(endpoint))
        {
            await socket.SendAsync(RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=slowboundary\r\nContent-Length: {slow.Length}\r\n\r\n"));
            foreach (var piece in slow.Chunk(slow.Length / 10 + 1))
            {
                await Task.Delay(1000);
                await socket.SendAsync(piece);
            }
            var response = await RawHttp.ReadResponseAsync(socket, TimeSpan.FromSeconds(20));
            Assert.That(response.Status, Is.EqualTo(200), response.Head + response.Body);
        }
        Assert.That(daemon.Store.ListCommitted(), Has.Count.EqualTo(1));

        // Stalled: half the body, then silence. The daemon must hang up on its own within a bounded time.
        var stalled = new Multipart("stallboundary").File("stall.bin", RandomNumberGenerator.GetBytes(100_000)).Build();
        using (var socket = await RawHttp.ConnectAsync(endpoint))
        {
            await socket.SendAsync(RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=stallboundary\r\nContent-Length: {stalled.Length}\r\n\r\n"));
            await socket.SendAsync(stalled.AsMemory(0, stalled.Length / 2));
            var response = await RawHttp.ReadResponseAsync(socket, TimeSpan.FromSeconds(30));
            Assert.That(response.Closed, Is.True, "the stalled connection is closed by the daemon, within the reader's 30 s");
            Assert.That(response.Status, Is.Null.Or.LessThan(500));
        }
        await WaitUntil(() => daemon.Counters.Refused == 1); // the daemon has finished with it, not merely hung up
        Assert.That(daemon.Store.ListCommitted(), Has.Count.EqualTo(1), "the stalled upload stored nothing");
        Assert.That(daemon.BlobFiles(), Has.Length.EqualTo(1), "and left no partial behind");
    }

    [Test]
    public async Task A_connection_cut_midway_stores_nothing_and_leaves_no_pieces()
    {
        await using var daemon = await TestDaemon.StartAsync();
        var body = new Multipart("cutboundary").File("cut.bin", RandomNumberGenerator.GetBytes(2_000_000)).Build();
        using (var socket = await RawHttp.ConnectAsync(new UnixDomainSocketEndPoint(daemon.SocketPath)))
        {
            await socket.SendAsync(RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: {TestDaemon.OnionHost}\r\nContent-Type: multipart/form-data; boundary=cutboundary\r\nContent-Length: {body.Length}\r\n\r\n"));
            await socket.SendAsync(body.AsMemory(0, body.Length / 2));
            await Task.Delay(300);
        } // closed: the source's circuit died
        await WaitUntil(() => daemon.Counters.Refused == 1);
        Assert.That(daemon.Store.ListCommitted(), Is.Empty);
        Assert.That(daemon.BlobFiles(), Is.Empty);

        using var client = daemon.SocketClient();
        using var after = await client.GetAsync("/");
        Assert.That(after.StatusCode, Is.EqualTo(HttpStatusCode.OK), "still serving");
    }

    [Test]
    public async Task Past_the_concurrent_uploads_limit_a_source_gets_a_busy_page_and_those_in_progress_finish()
    {
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxConcurrentUploads"] = "2");
        var endpoint = new IPEndPoint(IPAddress.Loopback, daemon.Loopback.Port);
        var body = new Multipart("heldboundary").File("held.bin", RandomNumberGenerator.GetBytes(200_000)).Field("message", "held").Build();
        var head = RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=heldboundary\r\nContent-Length: {body.Length}\r\n\r\n");
        var held = new List<Socket>();
        try
        {
            // Two uploads in progress, halfway through, take both places.
            for (var i = 0; i < 2; i++)
            {
                var socket = await RawHttp.ConnectAsync(endpoint);
                held.Add(socket);
                await socket.SendAsync(head);
                await socket.SendAsync(body.AsMemory(0, body.Length / 2));
            }
            await WaitUntil(() => daemon.BlobFiles().Length == 2);

            using var client = daemon.LoopbackClient();
            using (var busy = await client.PostAsync("/", new Multipart().File("third.txt", "third"u8.ToArray()).ToContent()))
            {
                Assert.That(busy.StatusCode, Is.EqualTo(HttpStatusCode.ServiceUnavailable));
                var busyHtml = await busy.Content.ReadAsStringAsync();
                Assert.That(busyHtml, Does.Contain("Too many submissions").And.Contain("Nothing from this attempt was kept"));
                Assert.That(busyHtml, Does.Not.Contain("Many people"), "the places may be held by anyone, not by many sources");
                Assert.That(busy.Headers.RetryAfter?.Delta, Is.GreaterThan(TimeSpan.Zero));
            }
            Assert.That(daemon.BlobFiles(), Has.Length.EqualTo(2), "the refused upload left nothing");

            foreach (var socket in held)
            {
                await socket.SendAsync(body.AsMemory(body.Length / 2));
                var receipt = await RawHttp.ReadResponseAsync(socket, TimeSpan.FromSeconds(20));
                Assert.That(receipt.Status, Is.EqualTo(200), receipt.Head + receipt.Body);
            }
            using (var next = await client.PostAsync("/", new Multipart().File("later.txt", "later"u8.ToArray()).ToContent()))
                Assert.That(next.StatusCode, Is.EqualTo(HttpStatusCode.OK), "their places are free again");
        }
        finally
        {
            foreach (var socket in held) socket.Dispose();
        }
        Assert.That(daemon.OpenAll().Select(o => o.Files.Single().OriginalName), Is.EquivalentTo(new[] { "held.bin", "held.bin", "later.txt" }));
        Assert.That(daemon.Counters.Refused, Is.EqualTo(1));
    }

    [Test]
    public async Task Hundreds_of_uploads_cut_off_together_leave_no_pieces_and_the_form_is_answered_meanwhile()
    {
        // Each cut upload is cleaned up on the thread pool. A clean-up that blocked its thread while waiting for
        // its blob's disk lane, itself queued on the pool behind the others, starved it: after 600 uploads cut off
        // at once the daemon answered nothing, not even the form, for minutes.
        const int uploads = 200;
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxConcurrentUploads"] = uploads.ToString());
        var body = new Multipart("cutboundary").File("cut.bin", RandomNumberGenerator.GetBytes(1_000_000)).Build();
        var head = RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: {TestDaemon.OnionHost}\r\nContent-Type: multipart/form-data; boundary=cutboundary\r\nContent-Length: {body.Length}\r\n\r\n");
        var sockets = new List<Socket>();
        try
        {
            for (var i = 0; i < uploads; i++)
            {
                var socket = await RawHttp.ConnectAsync(new UnixDomainSocketEndPoint(daemon.SocketPath));
                sockets.Add(socket);
                await socket.SendAsync(head);
                await socket.SendAsync(body.AsMemory(0, 700_000));
            }
            // Every upload has sent a whole block of ciphertext on its way to the disk.
            await WaitUntil(() => daemon.BlobFiles().Count(f => new FileInfo(f).Length >= OnionDrop.Files.DirectFileWriter.BlockSize) == uploads, seconds: 60);
        }
        finally
        {
            foreach (var socket in sockets) socket.Dispose(); // all the sources' circuits die at once
        }

        using var client = daemon.SocketClient();
        client.Timeout = TimeSpan.FromSeconds(10);
        using (var form = await client.GetAsync("/"))
            Assert.That(form.StatusCode, Is.EqualTo(HttpStatusCode.OK), "a source asking for the form meanwhile gets it");
        // A second or two here, and a minute while the pool starved: the limit leaves room for a slow machine.
        await WaitUntil(() => daemon.Counters.Refused == uploads, seconds: 20);
        Assert.That(daemon.Store.ListCommitted(), Is.Empty);
        Assert.That(daemon.BlobFiles(), Is.Empty, "no piece left behind");
    }

    internal static async Task WaitUntil(Func<bool> condition, int seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail("condition not met in time");
            await Task.Delay(50);
        }
    }
}
