using System.Net;
using System.Net.Sockets;
using OnionDrop.Daemon.Web;

namespace OnionDrop.Daemon.Tests;

/// <summary>What a source's browser gets: JS-free pages in their language, strict headers on everything, no cookies.</summary>
public sealed class PageTests
{
    private static TestDaemon _daemon = null!;

    [OneTimeSetUp]
    public async Task Start() => _daemon = await TestDaemon.StartAsync();

    [OneTimeTearDown]
    public async Task Stop() => await _daemon.DisposeAsync();

    [Test]
    public async Task Form_has_everything_a_source_needs_and_no_script_or_foreign_resource()
    {
        using var client = _daemon.SocketClient();
        var html = await client.GetStringAsync("/");
        Assert.That(html, Does.Contain("La Gazette du Lac"));
        Assert.That(html, Does.Contain("Documents about public affairs in the Lake district are welcome."));
        Assert.That(html, Does.Contain("Who receives it").And.Contain("What happens to it").And.Contain("Before you send"));
        Assert.That(html, Does.Contain("Tor Browser").And.Contain("metadata").And.Contain("work computer"));
        Assert.That(html, Does.Contain("<form class=\"card\" method=\"post\" action=\"/?lang=en\" enctype=\"multipart/form-data\">"));
        Assert.That(html, Does.Contain("<input type=\"file\" id=\"files\" name=\"files\" multiple aria-describedby=\"files-hint\">"));
        Assert.That(html, Does.Contain("<textarea id=\"message\" name=\"message\"").And.Contain("aria-describedby=\"message-hint\""));
        Assert.That(html, Does.Contain("id=\"files-hint\"").And.Contain("id=\"message-hint\""), "each hint is tied to its field, for screen readers");
        Assert.That(html, Does.Contain("cannot answer you on this site"), "the source learns there is no reply channel");
        Assert.That(html, Does.Contain("Up to 100 files, 2&#xA0;GB in total"));
        Assert.That(html, Does.Not.Contain("<script").IgnoreCase);
        Assert.That(html, Does.Not.Match(@"\son[a-z]+\s*="), "no event handler attributes");
        Assert.That(html, Does.Not.Match(@"(src|href|action)=""(https?:)?//"), "no resource from another origin");
        Assert.That(html, Does.Not.Contain("style=\""), "no inline style (CSP allows only /style.css)");
    }

    [Test]
    public async Task The_message_hint_states_the_limit_the_box_enforces_in_both_languages()
    {
        // maxlength cuts a long text silently, as it is typed or pasted: the hint must say where.
        using var client = _daemon.SocketClient();
        var en = await client.GetStringAsync("/?lang=en");
        Assert.That(en, Does.Contain("maxlength=\"100000\""));
        Assert.That(Hint(en, "message-hint"), Does.Contain("At most 100,000 characters"));
        var fr = await client.GetStringAsync("/?lang=fr");
        Assert.That(Hint(fr, "message-hint"), Does.Contain("Au plus 100&#x202F;000 caractères"));
    }

    [Test]
    public async Task The_sending_note_explains_an_error_right_after_sending_and_that_sending_again_is_safe()
    {
        using var client = _daemon.SocketClient();
        var en = Note(await client.GetStringAsync("/?lang=en"));
        Assert.That(en, Does.Contain("over the size limit").And.Contain("send fewer or smaller"));
        Assert.That(en, Does.Contain("safe to send again"));
        Assert.That(en, Does.Not.Contain("nothing was kept"), "a cut after the whole body arrived leaves it stored");
        var fr = Note(await client.GetStringAsync("/?lang=fr"));
        Assert.That(fr, Does.Contain("dépassent la taille maximale").And.Contain("renvoyer sans crainte"));
        Assert.That(fr, Does.Not.Contain("rien n’a été conservé"));
    }

    [Test]
    public async Task With_limits_of_one_the_pages_speak_in_the_singular()
    {
        await using var daemon = await TestDaemon.StartAsync(s => { s["OnionDrop:MaxFiles"] = "1"; s["OnionDrop:MaxMessageChars"] = "1"; });
        using var client = daemon.LoopbackClient();
        var en = await client.GetStringAsync("/?lang=en");
        var fr = await client.GetStringAsync("/?lang=fr");
        Assert.That(Hint(en, "files-hint"), Does.StartWith("One file, ").And.Not.Contain("several at once"));
        Assert.That(Hint(fr, "files-hint"), Does.StartWith("Un seul fichier, ").And.Not.Contain("plusieurs à la fois"));
        Assert.That(Hint(en, "message-hint"), Does.Contain("At most 1 character:"));
        Assert.That(Hint(fr, "message-hint"), Does.Contain("Au plus 1 caractère&#xA0;:"));
        Assert.That(en, Does.Not.Contain(" multiple "), "the file input lets a source pick one file only");

        foreach (var (lang, files, chars) in new[] { ("en", "only one file", "at most 1 character."), ("fr", "qu’un seul fichier", "au plus 1 caractère.") })
        {
            using (var r = await client.PostAsync($"/?lang={lang}", new Multipart().File("1", [1]).File("2", [2]).ToContent()))
                Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain(files).And.Not.Contain(" 1 files").And.Not.Contain(" 1 fichiers"));
            using (var r = await client.PostAsync($"/?lang={lang}", new Multipart().Field("message", "ab").ToContent()))
                Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain(chars));
        }
    }

    [Test]
    public async Task With_messages_turned_off_the_form_offers_no_message_box()
    {
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxMessageChars"] = "0");
        using var client = daemon.LoopbackClient();
        var form = await client.GetStringAsync("/?lang=en");
        Assert.That(form, Does.Not.Contain("<textarea").And.Not.Contain("message-hint"), "every text typed there would be refused");
        Assert.That(form, Does.Contain("<input type=\"file\""));

        using (var r = await client.PostAsync("/?lang=en", new Multipart().Field("x", "").ToContent()))
            Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain("Choose at least one file.").And.Not.Contain("write a message"));
        using (var r = await client.PostAsync("/?lang=en", new Multipart().File("a.txt", [1, 2, 3]).ToContent()))
        {
            var receipt = await r.Content.ReadAsStringAsync();
            Assert.That(receipt, Does.Contain("Files received: 1").And.Not.Contain("Message received"));
        }
    }

    /// <summary>The form's bytes are rendered once per language: each visit must still get a token of its own.</summary>
    [Test]
    public async Task Each_visit_gets_the_same_form_with_a_fresh_token_in_its_language()
    {
        using var client = _daemon.SocketClient();
        var tokenField = new System.Text.RegularExpressions.Regex("<input type=\"hidden\" name=\"once\" value=\"([0-9a-f]{32})\">");
        foreach (var lang in new[] { "en", "fr", "en" })
        {
            var first = await client.GetStringAsync($"/?lang={lang}");
            var second = await client.GetStringAsync($"/?lang={lang}");
            string t1 = tokenField.Match(first).Groups[1].Value, t2 = tokenField.Match(second).Groups[1].Value;
            Assert.That(t1, Has.Length.EqualTo(32));
            Assert.That(t2, Is.Not.EqualTo(t1), "a token serves one form");
            Assert.That(second.Replace(t2, t1), Is.EqualTo(first), "nothing else differs");
            Assert.That(first, Does.Contain($"<html lang=\"{lang}\">"));

            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, $"/?lang={lang}"));
            Assert.That(head.Content.Headers.ContentLength, Is.EqualTo(System.Text.Encoding.UTF8.GetByteCount(first)));
        }
    }

    [Test]
    public async Task The_message_box_has_a_size_a_text_browser_can_draw()
    {
        using var client = _daemon.SocketClient();
        Assert.That(await client.GetStringAsync("/"), Does.Match("<textarea id=\"message\" name=\"message\" rows=\"\\d+\" cols=\"\\d+\""));
    }

    [Test]
    public async Task French_reads_naturally_and_the_receipt_lines_agree()
    {
        using var client = _daemon.SocketClient();
        var fr = await client.GetStringAsync("/?lang=fr");
        Assert.That(fr, Does.Not.Contain("(La Gazette du Lac)"), "the newsroom's name is no aside in brackets");
        Assert.That(fr, Does.Contain("Chaque envoi est scellé dès son arrivée"), "the footer has a subject");
        Assert.That(fr, Does.Not.Contain("compte où revenir").And.Not.Contain("journalisées"));

        using (var r = await client.PostAsync("/?lang=fr", new Multipart().File("a.bin", new byte[2_000]).File("b.bin", new byte[2_000]).ToContent()))
            Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain("Fichiers reçus&#xA0;: 2").And.Contain("Message reçu&#xA0;: non"));
        using (var r = await client.PostAsync("/?lang=en", new Multipart().Field("message", "words only").ToContent()))
            Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain("Files received: none").And.Contain("Message received: yes"));
        using (var r = await client.PostAsync("/?lang=en", new Multipart().File("a.bin", [1]).ToContent()))
            Assert.That(await r.Content.ReadAsStringAsync(), Does.Contain("Message received: no"));
    }

    [Test]
    public async Task The_receipt_has_no_empty_navigation_landmark()
    {
        // The receipt has no language switch; an empty <nav> would still be announced by a screen reader as "navigation".
        using var client = _daemon.SocketClient();
        Assert.That(await client.GetStringAsync("/?lang=en"), Does.Contain("<nav class=\"lang\"><a href=\"/?lang=fr\""));
        using var r = await client.PostAsync("/?lang=en", new Multipart().Field("message", "words only").ToContent());
        var receipt = await r.Content.ReadAsStringAsync();
        Assert.That(receipt, Does.Contain("Your submission has arrived"));
        Assert.That(receipt, Does.Not.Contain("<nav"));
    }

    private static string Hint(string html, string id) => System.Text.RegularExpressions.Regex.Match(html, $"<p class=\"hint\" id=\"{id}\">(.*?)</p>").Groups[1].Value;

    private static string Note(string html) => System.Text.RegularExpressions.Regex.Match(html, "<p class=\"note\">(.*?)</p>").Groups[1].Value;

    [Test]
    public async Task Language_follows_Accept_Language_and_the_visible_switch_link_without_a_cookie()
    {
        using var client = _daemon.LoopbackClient();
        using var fr = new HttpRequestMessage(HttpMethod.Get, "/");
        fr.Headers.AcceptLanguage.ParseAdd("fr-CH, fr;q=0.9, en;q=0.8");
        using var frResponse = await client.SendAsync(fr);
        var frHtml = await frResponse.Content.ReadAsStringAsync();
        Assert.That(frHtml, Does.Contain("<html lang=\"fr\">").And.Contain("Envoyez-nous des documents"));
        Assert.That(frHtml, Does.Contain("href=\"/?lang=en\"").And.Contain(">English</a>"));
        Assert.That(frHtml, Does.Contain("action=\"/?lang=fr\""), "the receipt comes back in the same language");
        Assert.That(frHtml, Does.Contain("2&#xA0;Go"));

        // Tor Browser asks for English; the link switches.
        using var en = new HttpRequestMessage(HttpMethod.Get, "/?lang=fr");
        en.Headers.AcceptLanguage.ParseAdd("en-US, en;q=0.5");
        using var switched = await client.SendAsync(en);
        Assert.That(await switched.Content.ReadAsStringAsync(), Does.Contain("Envoyez-nous des documents"));
        Assert.That(switched.Headers.Contains("Set-Cookie"), Is.False);

        var english = await client.GetStringAsync("/?lang=xx");
        Assert.That(english, Does.Contain("<html lang=\"en\">").And.Contain("href=\"/?lang=fr\""));
    }

    [TestCase("GET", "/")]
    [TestCase("HEAD", "/")]
    [TestCase("GET", "/style.css")]
    [TestCase("GET", "/favicon.ico")]
    [TestCase("GET", "/../../etc/passwd")]
    [TestCase("DELETE", "/")]
    [TestCase("PUT", "/style.css")]
    [TestCase("POST", "/")]
    [TestCase("OPTIONS", "*")]
    public async Task Every_response_carries_the_privacy_headers_and_no_server_or_cookie(string method, string path)
    {
        var request = RawHttp.Ascii($"{method} {path} HTTP/1.1\r\nHost: {TestDaemon.OnionHost}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        var response = await RawHttp.SendAsync(new UnixDomainSocketEndPoint(_daemon.SocketPath), request);
        Assert.That(response.Status, Is.Not.Null.And.LessThan(500), response.Head);
        var head = response.Head;
        Assert.That(head, Does.Contain("Content-Security-Policy: " + PrivacyHeaders.ContentSecurityPolicy));
        Assert.That(head, Does.Contain("Referrer-Policy: no-referrer"));
        Assert.That(head, Does.Contain("X-Content-Type-Options: nosniff"));
        Assert.That(head, Does.Contain("Cross-Origin-Opener-Policy: same-origin"));
        Assert.That(head, Does.Contain("Cross-Origin-Resource-Policy: same-origin"));
        Assert.That(head, Does.Contain("Permissions-Policy: ").And.Contain("camera=()").And.Contain("geolocation=()"));
        Assert.That(head, Does.Contain("Cache-Control: no-store"));
        Assert.That(head, Does.Not.Contain("Server:").IgnoreCase);
        Assert.That(head, Does.Not.Contain("Set-Cookie").IgnoreCase);
        Assert.That(head, Does.Match(@"\nDate: \w{3}, \d{2} \w{3} \d{4} 00:00:00 GMT(\r|$)"), "the day only, never the clock's time");
    }

    // Kestrel answers these itself, before the application runs: its Date header must not give the clock away either.
    [TestCase("GET / HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n", 400)]
    [TestCase("GARBAGE\r\n\r\n", 400)]
    [TestCase("GET / HTTP/1.7\r\nHost: h\r\n\r\n", 505)]
    [TestCase("GET * HTTP/1.1\r\nHost: h\r\n\r\n", 405)]
    [TestCase("GET / HTTP/1.1\r\nHost: h\r\nX: {0}\r\n\r\n", 431)]
    [TestCase("GET /{0}{0} HTTP/1.1\r\nHost: h\r\n\r\n", 414)]
    public async Task Kestrels_own_error_responses_carry_the_day_only(string request, int status)
    {
        var response = await RawHttp.SendAsync(new UnixDomainSocketEndPoint(_daemon.SocketPath), RawHttp.Ascii(string.Format(request, new string('a', 40_000))));
        Assert.That(response.Status, Is.EqualTo(status), response.Head);
        Assert.That(response.Head, Does.Match(@"\nDate: \w{3}, \d{2} \w{3} \d{4} 00:00:00 GMT(\r|$)"), "the day only, never the clock's time");
    }

    [Test]
    public async Task Methods_and_paths_outside_the_site_get_calm_4xx_pages()
    {
        using var client = _daemon.LoopbackClient();
        using var notFound = await client.GetAsync("/admin");
        Assert.That(notFound.StatusCode, Is.EqualTo(HttpStatusCode.NotFound));
        Assert.That(await notFound.Content.ReadAsStringAsync(), Does.Contain("Page not found"));

        using var delete = await client.DeleteAsync("/");
        Assert.That(delete.StatusCode, Is.EqualTo(HttpStatusCode.MethodNotAllowed));
        Assert.That(delete.Content.Headers.Allow, Is.EquivalentTo(new[] { "GET", "HEAD", "POST" }));

        using var css = await client.GetAsync("/style.css");
        Assert.That(css.Content.Headers.ContentType!.MediaType, Is.EqualTo("text/css"));
        Assert.That(await css.Content.ReadAsStringAsync(), Does.Contain(".card"));

        using var wrongType = await client.PostAsync("/", new StringContent("message=hello", null, "application/x-www-form-urlencoded"));
        Assert.That(wrongType.StatusCode, Is.EqualTo(HttpStatusCode.UnsupportedMediaType));
    }

    [TestCase("evil.example", 400)]
    [TestCase("127.0.0.1.nip.io", 400)]
    [TestCase("localhost", 200)]
    [TestCase("127.0.0.1", 200)]
    [TestCase("[::1]", 200)]
    [TestCase(TestDaemon.OnionHost, 200)]
    [TestCase("www." + TestDaemon.OnionHost, 200)]
    [TestCase("notav3name.onion", 400)]
    [TestCase("tp3k262uwy4r2k3ycr5awluarykdpag6a7y33jxop4cs2lu5uz5sseqd.onion", 400)]   // OnionHost mistyped: fails its checksum
    public async Task Host_header_must_be_ours(string host, int expected)
    {
        var endpoint = new IPEndPoint(IPAddress.Loopback, _daemon.Loopback.Port);
        var response = await RawHttp.SendAsync(endpoint, RawHttp.Ascii($"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"));
        Assert.That(response.Status, Is.EqualTo(expected), response.Head);
        if (expected == 400) Assert.That(response.Body, Does.Contain("Wrong address"));
    }

    [Test]
    public async Task Once_the_onion_name_is_known_only_that_name_is_served()
    {
        await using var daemon = await TestDaemon.StartAsync();
        const string other = "pg6mmjiyjmcrsslvykfwnntlaru7p5svn6y2ymmju6nubxndf4pscryd.onion";   // another real v3 name
        daemon.App.Services.GetService(typeof(OnionServiceAddress)).As<OnionServiceAddress>().Publish(TestDaemon.OnionHost[..56]);
        using (var ours = daemon.SocketClient()) Assert.That((await ours.GetAsync("/")).StatusCode, Is.EqualTo(HttpStatusCode.OK));
        using (var theirs = daemon.SocketClient(other)) Assert.That((await theirs.GetAsync("/")).StatusCode, Is.EqualTo(HttpStatusCode.BadRequest));
    }

    [Test]
    public async Task Unix_socket_is_private_to_the_daemon_user()
    {
        var mode = File.GetUnixFileMode(_daemon.SocketPath);
        Assert.That(mode, Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        await Task.CompletedTask;
    }
}

internal static class ObjectExtensions
{
    public static T As<T>(this object? o) => (T)o!;
}
