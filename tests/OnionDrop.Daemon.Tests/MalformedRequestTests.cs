using System.Net;
using System.Net.Sockets;
using System.Text;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// Requests no browser would send. Each gets a 4xx page or a closed connection, never a 5xx; none stores
/// anything; the daemon serves normally afterwards. Odd but legitimate filenames, on the other hand, are
/// accepted as sent and come out of `open` under safe names.
/// </summary>
public sealed class MalformedRequestTests
{
    private const string B = "corpusboundary";

    private static string Post(string contentType, string body, string? extraHeaders = null, string host = "localhost") =>
        $"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: {contentType}\r\nContent-Length: {Encoding.UTF8.GetByteCount(body)}\r\n{extraHeaders}\r\n{body}";

    private static string Part(string headers, string content) => $"--{B}\r\n{headers}\r\n\r\n{content}\r\n";

    private static readonly string FilePart = Part("Content-Disposition: form-data; name=\"files\"; filename=\"a.txt\"", "secret");
    private static readonly string Multi = $"multipart/form-data; boundary={B}";
    private static readonly string ValidBody = FilePart + Part("Content-Disposition: form-data; name=\"message\"", "hello") + $"--{B}--\r\n";

    /// <summary>(name, raw request). Every one must end in a 4xx or a closed connection.</summary>
    public static IEnumerable<TestCaseData> Corpus()
    {
        TestCaseData Case(string name, string request) => new TestCaseData(Encoding.UTF8.GetBytes(request)).SetName("Malformed: " + name);
        TestCaseData Raw(string name, byte[] request) => new TestCaseData(request).SetName("Malformed: " + name);

        yield return Case("multipart without boundary", Post("multipart/form-data", ValidBody));
        yield return Case("empty boundary", Post("multipart/form-data; boundary=\"\"", ValidBody));
        yield return Case("boundary over 200 chars", Post("multipart/form-data; boundary=" + new string('b', 201), ValidBody.Replace(B, new string('b', 201))));
        yield return Case("body uses another boundary", Post("multipart/form-data; boundary=other", ValidBody));
        yield return Case("no parts", Post(Multi, $"--{B}--\r\n"));
        yield return Case("empty body", Post(Multi, ""));
        yield return Case("preamble only, no boundary line", Post(Multi, new string('x', 5000)));
        yield return Case("part without Content-Disposition", Post(Multi, Part("Content-Type: text/plain", "x") + $"--{B}--\r\n"));
        yield return Case("part with attachment disposition", Post(Multi, Part("Content-Disposition: attachment; filename=\"a\"", "x") + $"--{B}--\r\n"));
        yield return Case("part headers never end", Post(Multi, $"--{B}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\"\r\n"));
        yield return Case("no closing boundary", Post(Multi, FilePart.TrimEnd()));
        yield return Case("thousands of tiny fields", Post(Multi, string.Concat(Enumerable.Repeat(Part("Content-Disposition: form-data; name=\"x\"", "y"), 5000)) + $"--{B}--\r\n"));
        yield return Case("thousands of tiny files", Post(Multi, string.Concat(Enumerable.Range(0, 3000).Select(i => Part($"Content-Disposition: form-data; name=\"files\"; filename=\"{i}\"", "z"))) + $"--{B}--\r\n"));
        yield return Case("huge part header", Post(Multi, Part("Content-Disposition: form-data; name=\"files\"; filename=\"" + new string('h', 20_000) + "\"", "x") + $"--{B}--\r\n"));
        yield return Case("too many part headers", Post(Multi, Part("Content-Disposition: form-data; name=\"files\"; filename=\"a\"\r\n" + string.Join("\r\n", Enumerable.Range(0, 50).Select(i => $"X-{i}: v")), "x") + $"--{B}--\r\n"));
        yield return Case("unknown field too big", Post(Multi, Part("Content-Disposition: form-data; name=\"other\"", new string('o', 100_000)) + $"--{B}--\r\n"));
        yield return Case("huge request header", Post(Multi, ValidBody, $"X-Padding: {new string('p', 64 * 1024)}\r\n"));
        yield return Case("too many request headers", Post(Multi, ValidBody, string.Concat(Enumerable.Range(0, 200).Select(i => $"X-H{i}: v\r\n"))));
        yield return Case("very long request line", $"GET /{new string('a', 20_000)} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        yield return Case("Content-Length shorter than body", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nContent-Length: 40\r\n\r\n{ValidBody}");
        yield return Case("Content-Length longer than body", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nContent-Length: {ValidBody.Length + 1000}\r\n\r\n{ValidBody}");
        yield return Case("two different Content-Length headers", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nContent-Length: {ValidBody.Length}\r\nContent-Length: 5\r\n\r\n{ValidBody}");
        yield return Case("Content-Length and chunked together", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nContent-Length: 10\r\nTransfer-Encoding: chunked\r\n\r\n{ValidBody.Length:x}\r\n{ValidBody}\r\n0\r\n\r\n");
        yield return Case("invalid chunk size", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{ValidBody}\r\n0\r\n\r\n");
        yield return Case("unknown transfer coding", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nTransfer-Encoding: gzip\r\n\r\n{ValidBody}");
        yield return Case("negative Content-Length", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nContent-Length: -5\r\n\r\n{ValidBody}");
        yield return Case("wrong Host", Post(Multi, ValidBody, host: "evil.example"));
        foreach (var host in new[] { ".onion", ".onion.", "onion", "..onion", "x..onion" })
            yield return Case($"Host {host}", $"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        yield return Case("absolute-form target to another host", $"POST http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\nContent-Type: {Multi}\r\nContent-Length: {ValidBody.Length}\r\n\r\n{ValidBody}");
        yield return Case("no Host in HTTP/1.1", $"POST / HTTP/1.1\r\nContent-Type: {Multi}\r\nContent-Length: {ValidBody.Length}\r\n\r\n{ValidBody}");
        yield return Case("HTTP/1.0 without Host", $"POST / HTTP/1.0\r\nContent-Type: {Multi}\r\nContent-Length: {ValidBody.Length}\r\n\r\n{ValidBody}");
        yield return Case("PUT with an upload", Post(Multi, ValidBody).Replace("POST /", "PUT /"));
        yield return Case("PATCH on the stylesheet", Post(Multi, ValidBody).Replace("POST /", "PATCH /style.css"));
        yield return Case("urlencoded form", Post("application/x-www-form-urlencoded", "message=hello&files=a"));
        yield return Case("JSON body", Post("application/json", "{\"message\":\"hello\"}"));
        yield return Case("multipart/mixed", Post($"multipart/mixed; boundary={B}", ValidBody));
        yield return Case("no Content-Type", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: {ValidBody.Length}\r\n\r\n{ValidBody}");
        yield return Case("obsolete header folding", $"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data;\r\n boundary={B}\r\nContent-Length: {ValidBody.Length}\r\n\r\n{ValidBody}");
        yield return Raw("NUL in a header", Encoding.UTF8.GetBytes(Post(Multi, ValidBody, "X-Bad: a\0b\r\n")));
        yield return Raw("binary garbage", Enumerable.Range(0, 4096).Select(i => (byte)(i * 7919 % 251)).ToArray());
        yield return Case("request line without version", "POST /\r\nHost: localhost\r\n\r\n");
        yield return Case("path traversal", "GET /../../../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n");
        yield return Case("upgrade to websocket", "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".Replace("GET /", "GET /ws"));
        yield return Case("h2c prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    }

    private static TestDaemon _daemon = null!;

    [OneTimeSetUp]
    public async Task Start() => _daemon = await TestDaemon.StartAsync(s =>
    {
        s["OnionDrop:MaxSubmissionBytes"] = "1000000";
        s["OnionDrop:UploadIdleTimeout"] = "00:00:03";
    });

    [OneTimeTearDown]
    public async Task Stop() => await _daemon.DisposeAsync();

    [Test]
    public async Task The_whole_corpus_in_a_row_leaves_nothing_stored_or_half_written_and_the_form_served()
    {
        // A daemon of its own, which only the corpus reaches: its store must end exactly empty. (In a teardown,
        // a failed check would not fail the run under `dotnet test`.)
        await using var daemon = await TestDaemon.StartAsync(s =>
        {
            s["OnionDrop:MaxSubmissionBytes"] = "1000000";
            s["OnionDrop:UploadIdleTimeout"] = "00:00:03";
        });
        var endpoint = new IPEndPoint(IPAddress.Loopback, daemon.Loopback.Port);
        var cases = Corpus().ToList();
        await Task.WhenAll(cases.Select(c => RawHttp.SendAsync(endpoint, (byte[])c.Arguments[0]!, TimeSpan.FromSeconds(10))));

        Assert.That(daemon.Store.ListCommitted(), Is.Empty, $"after {cases.Count} malformed requests");
        Assert.That(daemon.BlobFiles().Where(f => !f.EndsWith(".sealed")), Is.Empty, "nothing half-written");
        using var client = daemon.LoopbackClient();
        Assert.That((await client.GetAsync("/")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
    }

    [TestCaseSource(nameof(Corpus))]
    public async Task Gets_a_4xx_or_a_closed_connection_and_stores_nothing(byte[] request)
    {
        var before = _daemon.Store.ListCommitted().Count;
        var response = await RawHttp.SendAsync(new IPEndPoint(IPAddress.Loopback, _daemon.Loopback.Port), request, TimeSpan.FromSeconds(10));
        Assert.That(response.Status is >= 400 and < 500 || response is { Status: null, Closed: true }, $"got {response.Status}, closed {response.Closed}, timed out {response.TimedOut}:\n{response.Head}");
        Assert.That(response.Body, Does.Not.Contain("Exception").And.Not.Contain("   at "), "no stack trace");
        await Task.Delay(100);
        Assert.That(_daemon.Store.ListCommitted(), Has.Count.EqualTo(before), "nothing stored");
        Assert.That(_daemon.BlobFiles().Where(f => !f.EndsWith(".sealed")), Is.Empty, "no partial left");
        using var socket = await RawHttp.ConnectAsync(new UnixDomainSocketEndPoint(_daemon.SocketPath));
        await socket.SendAsync(RawHttp.Ascii($"GET / HTTP/1.1\r\nHost: {TestDaemon.OnionHost}\r\nConnection: close\r\n\r\n"));
        Assert.That((await RawHttp.ReadResponseAsync(socket, TimeSpan.FromSeconds(10))).Status, Is.EqualTo(200), "still serving");
    }

    [Test]
    public async Task Endless_chunked_body_is_refused_and_cut_off()
    {
        using var socket = await RawHttp.ConnectAsync(new IPEndPoint(IPAddress.Loopback, _daemon.Loopback.Port));
        await socket.SendAsync(RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: {Multi}\r\nTransfer-Encoding: chunked\r\n\r\n"));
        var chunk = RawHttp.Concat(RawHttp.Ascii("10000\r\n"), new byte[0x10000].Select(_ => (byte)'q').ToArray(), RawHttp.Ascii("\r\n"));
        await socket.SendAsync(RawHttp.Ascii($"{FilePart.Length:x}\r\n{FilePart[..^2]}\r\n"));
        var sent = 0L;
        try
        {
            // Ten times the limit; the daemon must give up long before.
            for (; sent < 10_000_000; sent += chunk.Length)
                await socket.SendAsync(chunk, SocketFlags.None).WaitAsync(TimeSpan.FromSeconds(10));
        }
        catch (Exception e) when (e is SocketException or TimeoutException) { }
        var response = await RawHttp.ReadResponseAsync(socket, TimeSpan.FromSeconds(10));
        Assert.That(response.Status is 411 or 413 || response is { Status: null, Closed: true }, $"got {response.Status}, closed {response.Closed}, timed out {response.TimedOut}:\n{response.Head}");
        Assert.That(sent, Is.LessThan(10_000_000), "the daemon stopped reading");
        Assert.That(_daemon.BlobFiles().Where(f => !f.EndsWith(".sealed")), Is.Empty);
    }

    [Test]
    public async Task A_boundary_longer_than_the_RFCs_70_characters_is_accepted()
    {
        // w3m sends an 82-character boundary when a form is sent again after going Back.
        var boundary = new string('-', 12) + string.Concat(Enumerable.Repeat("w3mboundary", 7)) + "x";
        Assert.That(boundary, Has.Length.EqualTo(90));
        var body = ValidBody.Replace(B, boundary).Replace("hello", "sent with a long boundary");
        var response = await RawHttp.SendAsync(new IPEndPoint(IPAddress.Loopback, _daemon.Loopback.Port),
            Encoding.UTF8.GetBytes(Post($"multipart/form-data; boundary={boundary}", body)), TimeSpan.FromSeconds(10));
        Assert.That(response.Status, Is.EqualTo(200), response.Head);
        Assert.That(_daemon.OpenAll().Any(o => o.Message == "sent with a long boundary"), Is.True);
    }

    [Test]
    public async Task HTTP_version_9_gets_Kestrels_505_and_nothing_else_happens()
    {
        // 505 is the one 5xx Kestrel itself sends for a client's request (RFC 9110 §15.6.6); it is
        // not an error of ours, and the daemon carries on.
        var before = _daemon.Store.ListCommitted().Count;
        var response = await RawHttp.SendAsync(new IPEndPoint(IPAddress.Loopback, _daemon.Loopback.Port),
            RawHttp.Ascii("GET / HTTP/9.9\r\nHost: localhost\r\n\r\n"), TimeSpan.FromSeconds(10));
        Assert.That(response.Status, Is.EqualTo(505), response.Head);
        Assert.That(response.Body, Does.Not.Contain("Exception").And.Not.Contain("   at "), "no stack trace");
        Assert.That(_daemon.Store.ListCommitted(), Has.Count.EqualTo(before), "nothing stored");
        Assert.That(_daemon.BlobFiles().Where(f => !f.EndsWith(".sealed")), Is.Empty, "no partial left");
        using var client = _daemon.LoopbackClient();
        Assert.That((await client.GetAsync("/")).StatusCode, Is.EqualTo(HttpStatusCode.OK), "still serving");
    }

    /// <summary>Filenames as raw bytes on the wire, and what the opener must report as the original name.</summary>
    private static readonly (byte[] Raw, string Original)[] OddNames =
    [
        .. new[]
        {
            "../../etc/passwd", "..\\..\\windows\\system32\\config\\sam", "/absolute/path.txt", "a\0b.txt",
            "tab\there\u0001\u001b[31mred.txt", "<script>alert(1)</script>.html", "مستند سري.docx", "机密文件.pdf",
            "\u202Egpj.exe", "📄 note.txt", ".", "..", " ", "CON", "-rf", ".bashrc", "a\"b.txt", "a; b=c.txt",
            string.Concat(Enumerable.Repeat("é", 1000)) + ".pdf", "%2e%2e%2fescaped.txt", "C:\\Users\\me\\Desktop\\memo.docx",
        }.Select(n => (Encoding.UTF8.GetBytes(n), n)),
        ([.. "bad-"u8, 0xff, 0xfe, .. "-utf8.txt"u8], "bad-\uFFFD\uFFFD-utf8.txt"),
    ];

    [Test]
    public async Task A_file_is_kept_whatever_its_name_parameter_and_content_type_look_like()
    {
        // (Content-Disposition parameters, the name the journalist sees.) None of these comes from Tor Browser,
        // but from other clients; each part's content must reach the journalist all the same.
        (string Disposition, string Name)[] parts =
        [
            ("name=\"files\"; filename*=KOI8-R''%E1doc.pdf", "KOI8-R''%E1doc.pdf"),  // a charset .NET does not decode
            ("name=\"files\"; filename*=doc.pdf", "doc.pdf"),                        // no charset
            ("name=\"files\"; filename=my doc.pdf", "my doc.pdf"),                  // unquoted, with a space
            ("name=\"files\"; filename*=", ""),                                     // empty
            ("name=\"files\"", ""),                                                 // the file input, no filename at all
            ("name=\"other\"; filename=\"elsewhere.txt\"", "elsewhere.txt"),         // a file under another field name
        ];
        var body = string.Concat(parts.Select((p, i) => Part($"Content-Disposition: form-data; {p.Disposition}", $"content {i}")))
                   + Part("Content-Disposition: form-data; name=\"files\"; filename=\"long-type.bin\"\r\nContent-Type: text/" + new string('x', 5000), "content long type")
                   + $"--{B}--\r\n";
        var response = await RawHttp.SendAsync(new IPEndPoint(IPAddress.Loopback, _daemon.Loopback.Port), Encoding.UTF8.GetBytes(Post(Multi, body)), TimeSpan.FromSeconds(10));
        Assert.That(response.Status, Is.EqualTo(200), response.Head);

        var opened = _daemon.OpenAll().Single(o => o.Files.Any(f => f.OriginalName == "long-type.bin"));
        Assert.That(opened.Files.Select(f => f.OriginalName), Is.EqualTo(parts.Select(p => p.Name).Append("long-type.bin")));
        for (var i = 0; i < parts.Length; i++)
            Assert.That(File.ReadAllText(Path.Combine(opened.Directory, opened.Files[i].SafeName)), Is.EqualTo($"content {i}"));
        Assert.That(opened.Files[^1].ContentType, Is.EqualTo("application/octet-stream"), "a content type too long to seal is recorded as unknown");
    }

    [Test]
    public async Task Odd_filenames_are_accepted_as_sent_and_open_under_safe_names()
    {
        var form = new Multipart();
        for (var i = 0; i < OddNames.Length; i++) form.File(OddNames[i].Raw, Encoding.ASCII.GetBytes($"content {i}"));
        using var client = _daemon.LoopbackClient();
        using var response = await client.PostAsync("/", form.ToContent());
        Assert.That(response.StatusCode, Is.EqualTo(HttpStatusCode.OK), await response.Content.ReadAsStringAsync());

        var opened = _daemon.OpenAll().Single(o => o.Files.Count == OddNames.Length);
        for (var i = 0; i < OddNames.Length; i++)
        {
            var file = opened.Files[i];
            Assert.That(file.OriginalName, Is.EqualTo(OddNames[i].Original), $"name {i} sealed as sent");
            Assert.That(file.SafeName, Does.Not.Contain("/").And.Not.Contain("\\").And.Not.StartWith(".").And.Not.StartWith("-"));
            Assert.That(file.SafeName.Any(char.IsControl), Is.False);
            Assert.That(Encoding.UTF8.GetByteCount(file.SafeName), Is.LessThanOrEqualTo(255));
            var path = Path.Combine(opened.Directory, file.SafeName);
            Assert.That(Path.GetDirectoryName(Path.GetFullPath(path)), Is.EqualTo(Path.GetFullPath(opened.Directory)));
            Assert.That(File.ReadAllText(path), Is.EqualTo($"content {i}"));
        }
    }
}
