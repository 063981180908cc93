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
        await using var browser = await DevTools.LaunchAsync();
        using var files = new TempDirectory("oniondrop-browser-files-");
        var artifacts = Path.Combine(TestContext.CurrentContext.WorkDirectory, "artifacts");
        Directory.CreateDirectory(artifacts);

        await browser.SendAsync("Page.enable");
        await browser.SendAsync("DOM.enable");
        await browser.SendAsync("Emulation.setScriptExecutionDisabled", new { value = true });

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

    private static void Save(string directory, string name, byte[] png)
    {
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path, png);
        TestContext.AddTestAttachment(path, name);
    }
}
