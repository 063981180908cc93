using System.Security.Cryptography;
using System.Text;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// A real browser with JavaScript off (as Tor Browser at "Safest"): it opens the form, attaches a file,
/// types a message, submits and sees the receipt, in English and in French. Screenshots are attached
/// to the test result.
/// </summary>
[Category("EndToEnd")]
public sealed class BrowserTests
{
    [Test]
    public async Task Chromium_without_JavaScript_submits_the_form_and_sees_the_receipt_in_both_languages()
    {
        if (!File.Exists(DevTools.ChromiumPath)) Assert.Fail("chromium missing: run scripts/setup-deps");
        await using var daemon = await TestDaemon.StartAsync();
        await using var browser = await DevTools.LaunchWithoutJavaScriptAsync();
        using var files = new TempDirectory("oniondrop-browser-files-");
        var artifacts = Path.Combine(TestContext.CurrentContext.WorkDirectory, "artifacts");
        Directory.CreateDirectory(artifacts);

        var sent = new List<(string Message, byte[] Content)>();
        foreach (var (lang, message, expectReceipt) in new[]
                 {
                     ("en", "Hello, the attached minutes show the vote was moved. No reply needed.", "Your submission has arrived"),
                     ("fr", "Bonjour, voici le procès-verbal : le vote a été déplacé. Merci de votre travail.", "Votre envoi est bien arrivé"),
                 })
        {
            await browser.NavigateAsync(new Uri(daemon.Loopback, $"/?lang={lang}").ToString());
            Assert.That(await browser.OuterHtmlAsync(), Does.Contain($"<html lang=\"{lang}\">"));
            Save(artifacts, $"form-{lang}.png", await browser.ScreenshotAsync());

            var content = RandomNumberGenerator.GetBytes(50_000);
            var path = Path.Combine(files.Path, $"minutes-{lang}.pdf");
            await File.WriteAllBytesAsync(path, content);
            await browser.SendAsync("DOM.setFileInputFiles", new { files = new[] { path }, nodeId = await browser.QueryAsync("input[type=file]") });
            await browser.SendAsync("DOM.focus", new { nodeId = await browser.QueryAsync("textarea#message") });
            await browser.SendAsync("Input.insertText", new { text = message });

            var seen = browser.EventCount;
            await browser.ClickAsync(await browser.QueryAsync("button[type=submit]"));
            await browser.WaitForEventAsync("Page.loadEventFired", seen);

            var receipt = await browser.OuterHtmlAsync();
            Assert.That(receipt, Does.Contain(expectReceipt));
            Save(artifacts, $"receipt-{lang}.png", await browser.ScreenshotAsync());
            var latest = daemon.Store.ListCommitted().Last();
            Assert.That(receipt, Does.Contain(latest.Id), "the receipt shows the reference");
            sent.Add((message, content));
        }

        var opened = daemon.OpenAll();
        Assert.That(opened, Has.Count.EqualTo(2));
        for (var i = 0; i < 2; i++)
        {
            Assert.That(opened[i].Message.Replace("\r\n", "\n"), Is.EqualTo(sent[i].Message));
            var file = opened[i].Files.Single();
            Assert.That(file.OriginalName, Does.StartWith("minutes-"));
            Assert.That(File.ReadAllBytes(Path.Combine(opened[i].Directory, file.SafeName)), Is.EqualTo(sent[i].Content));
        }
    }

    /// <summary>
    /// Firefox ESR, the engine of Tor Browser, with JavaScript off: it sends the form and sees the receipt; and with
    /// every upload place taken it sees the busy page, though it is still sending 16 MiB at a Tor-like 1.5 MiB/s when
    /// the daemon answers. Firefox shows an answer only once its upload is sent, and Kestrel drains an unread body
    /// for 5 s only: before the daemon read the rest itself, Firefox showed "The connection to the server was reset".
    /// </summary>
    [Test]
    public async Task Firefox_without_JavaScript_sends_the_form_and_over_a_slow_uplink_is_shown_the_busy_page_not_a_reset()
    {
        if (!File.Exists(Marionette.FirefoxPath)) Assert.Fail("firefox-esr missing: run scripts/setup-deps");
        await using var daemon = await TestDaemon.StartAsync(s => s["OnionDrop:MaxConcurrentUploads"] = "1");
        await using var firefox = await Marionette.LaunchAsync();
        using var files = new TempDirectory("oniondrop-browser-files-");

        await using var slowUplink = new SlowUplinkProxy(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, daemon.Loopback.Port), 1536 * 1024);

        async Task<string> Submit(string name, byte[] content, string? message = null, int? port = null)
        {
            await firefox.NavigateAsync($"http://127.0.0.1:{port ?? daemon.Loopback.Port}/?lang=en");
            var path = Path.Combine(files.Path, name);
            await File.WriteAllBytesAsync(path, content);
            await firefox.ChooseFileAsync("input[type=file]", path);
            if (message is not null) await firefox.SendAsync("WebDriver:ElementSendKeys", new { id = await firefox.ElementAsync("textarea#message"), text = message });
            return await firefox.ClickAndReadAsync("button[type=submit]", leaving: "type=\"file\"", TimeSpan.FromSeconds(60));
        }

        var minutes = RandomNumberGenerator.GetBytes(50_000);
        const string message = "The minutes show the vote was moved. No reply needed.";
        var receipt = await Submit("minutes.pdf", minutes, message);
        Assert.That(receipt, Does.Contain("Your submission has arrived").And.Contain(daemon.Store.ListCommitted().Single().Id));

        // The one upload place taken by an upload halfway through.
        var body = new Multipart("heldboundary").File("held.bin", RandomNumberGenerator.GetBytes(100_000)).Build();
        using var held = await RawHttp.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, daemon.Loopback.Port));
        await held.SendAsync(RawHttp.Ascii($"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data; boundary=heldboundary\r\nContent-Length: {body.Length}\r\n\r\n"));
        await held.SendAsync(body.AsMemory(0, body.Length / 2));
        await UploadTests.WaitUntil(() => daemon.BlobFiles().Length == 2);
        var busy = await Submit("archive.zip", RandomNumberGenerator.GetBytes(16 << 20), port: slowUplink.Port);
        Assert.That(busy, Does.Contain("Too many submissions").And.Contain("Nothing from this attempt was kept"));

        var opened = daemon.OpenAll().Single();
        Assert.That(opened.Message.Replace("\r\n", "\n"), Is.EqualTo(message));
        Assert.That(File.ReadAllBytes(Path.Combine(opened.Directory, opened.Files.Single().SafeName)), Is.EqualTo(minutes));
        Assert.That(daemon.Counters.Refused, Is.EqualTo(1));
    }

    /// <summary>
    /// A double click selects a word, and the reference's dashes end words: the source who copies it that way would keep
    /// one group of five. The reference is selected whole instead, whatever part of it is clicked.
    /// </summary>
    [Test]
    public async Task Chromium_without_JavaScript_selects_the_whole_reference_with_a_double_click()
    {
        if (!File.Exists(DevTools.ChromiumPath)) Assert.Fail("chromium missing: run scripts/setup-deps");
        await using var daemon = await TestDaemon.StartAsync();
        await using var browser = await DevTools.LaunchWithoutJavaScriptAsync();

        await browser.NavigateAsync(new Uri(daemon.Loopback, "/?lang=en").ToString());
        await browser.SendAsync("DOM.focus", new { nodeId = await browser.QueryAsync("textarea#message") });
        await browser.SendAsync("Input.insertText", new { text = "A message only." });
        var seen = browser.EventCount;
        await browser.ClickAsync(await browser.QueryAsync("button[type=submit]"));
        await browser.WaitForEventAsync("Page.loadEventFired", seen);
        var reference = daemon.Store.ListCommitted().Single().Id;
        Assert.That(await browser.OuterHtmlAsync(), Does.Contain(reference));

        await browser.DoubleClickAsync(await browser.QueryAsync("#reference"));
        Assert.That(await browser.SelectionAsync(), Is.EqualTo(reference));
    }

    /// <summary>The form's card opens with its heading at the top, as the other cards do (its hidden token field comes first).</summary>
    [Test]
    public async Task Chromium_shows_the_form_cards_heading_at_the_same_place_as_the_other_cards()
    {
        if (!File.Exists(DevTools.ChromiumPath)) Assert.Fail("chromium missing: run scripts/setup-deps");
        await using var daemon = await TestDaemon.StartAsync();
        await using var browser = await DevTools.LaunchWithoutJavaScriptAsync();
        await browser.NavigateAsync(new Uri(daemon.Loopback, "/?lang=en").ToString());

        async Task<double> HeadingOffset(string card) =>
            await browser.TopAsync(await browser.QueryAsync(card + " > h2")) - await browser.TopAsync(await browser.QueryAsync(card));
        var advice = await HeadingOffset("section.advice");
        Assert.That(advice, Is.GreaterThan(0));
        Assert.That(await HeadingOffset("form.card"), Is.EqualTo(advice).Within(1));
    }

    private static void Save(string directory, string name, byte[] png)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, png);
        TestContext.AddTestAttachment(path, name);
    }
}
