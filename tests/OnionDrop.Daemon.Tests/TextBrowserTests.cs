using System.Net;
using System.Security.Cryptography;
using System.Text.RegularExpressions;
using OnionDrop.Daemon.Web;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// The form in a text browser, w3m (Debian's, which uploads files): its page reads whole and in order as text, each
/// field after its label, and a source at a terminal can attach a file, type a message, send and read the reference.
/// </summary>
[Category("EndToEnd")]
public sealed class TextBrowserTests
{
    private const string W3m = "/usr/bin/w3m";

    [SetUp]
    public void NeedsW3m()
    {
        if (!File.Exists(W3m)) Assert.Fail("w3m missing: run scripts/setup-deps");
    }

    /// <summary>80 columns, a classic terminal and -dump's own width; 132, a wide one.</summary>
    [Test]
    public async Task The_form_reads_whole_and_in_order_as_text_with_each_field_after_its_label([Values("en", "fr")] string lang, [Values(80, 132)] int columns)
    {
        await using var daemon = await TestDaemon.StartAsync();
        var t = lang == "fr" ? PageLanguage.French : PageLanguage.English;
        using var client = daemon.LoopbackClient();
        var html = await client.GetStringAsync($"/?lang={lang}");
        using var home = new TempDirectory("oniondrop-w3m-");
        var psi = ChildProcess.StartInfo(W3m, ["-dump", "-cols", columns.ToString(), "-O", "UTF-8", new Uri(daemon.Loopback, $"/?lang={lang}").ToString()]);
        psi.Environment["HOME"] = home.Path;
        psi.Environment["LANG"] = "C.UTF-8";
        var dump = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(30));
        Assert.That(dump.ExitCode, Is.Zero, dump.ToString());
        var text = TerminalScreen.Flatten(dump.Stdout.Split('\n'));
        TestContext.Out.WriteLine(dump.Stdout);

        Assert.That(dump.Stdout.Split('\n').Max(l => l.TrimEnd().Length), Is.LessThanOrEqualTo(columns), "nothing runs off the terminal");
        // What the source must read before sending, then the form, in this order.
        InOrder(text, "the page's parts",
            "La Gazette du Lac", "Documents about public affairs in the Lake district are welcome.",
            t["WhoHeading"], t.Format("WhoText", "La Gazette du Lac"),
            t["AdviceHeading"], t["Advice1"], t["Advice2"], t["Advice3"],
            t["SubmissionHeading"], t["FilesLabel"], t["MessageLabel"], t["SubmitButton"], t["SendingNote"]);
        // Every text the HTML holds is shown, in the HTML's order: none is hidden from a text browser.
        InOrder(text, "the HTML's texts", Texts(html));
        // Each field has its label (for screen readers too), and reads as one: the label, then the field, which w3m
        // draws as [   ] (a message box as one such line per row), not the label beside a box's last line.
        var fields = Regex.Matches(html, "<(input|textarea) (?![^>]*type=\"hidden\")[^>]*id=\"([^\"]+)\"[^>]*>");
        Assert.That(fields.Select(f => f.Groups[2].Value), Is.EquivalentTo(new[] { "files", "message" }));
        foreach (Match field in fields)
        {
            var label = Regex.Match(html, $"<label for=\"{field.Groups[2].Value}\">([^<]+)</label>");
            Assert.That(label.Success, Is.True, $"a label for {field.Value}");
            var rows = field.Groups[1].Value == "textarea" ? int.Parse(Regex.Match(field.Value, " rows=\"(\\d+)\"").Groups[1].Value) : 1;
            Assert.That(text, Does.Contain(Flat(WebUtility.HtmlDecode(label.Groups[1].Value) + string.Concat(Enumerable.Repeat(" [ ]", rows)))),
                $"{field.Value} right after its label");
        }
        // Text drawn by the style sheet alone never reaches a text browser (nor a screen reader, always).
        Assert.That(await client.GetStringAsync("/style.css"), Does.Not.Match(@"[\s;{]content\s*:"));
    }

    /// <summary>
    /// w3m at a terminal, driven by keys as a source would: Tab to the file field, Enter, type the file's path; Tab to the
    /// message box, Enter opens the editor (here `cat`, typed into, ended with Ctrl-D); Tab to the button, Enter. The
    /// receipt shows the reference; the journalist's key opens the same bytes, name and message.
    /// </summary>
    [Test]
    public async Task W3m_at_a_terminal_sends_a_file_and_a_message_and_shows_the_reference_in_both_languages()
    {
        await using var daemon = await TestDaemon.StartAsync();
        using var files = new TempDirectory("oniondrop-w3m-files-");
        var sent = new List<(string Name, byte[] Content, string Message)>();
        foreach (var (t, lines) in new[]
                 {
                     (PageLanguage.English, new[] { "The attached minutes show the vote was moved.", "No reply needed." }),
                     (PageLanguage.French, new[] { "Voici le procès-verbal : le vote a été déplacé.", "Merci de votre travail." }),
                 })
        {
            var name = $"minutes-{t.Code}.pdf";
            var content = RandomNumberGenerator.GetBytes(50_000);
            await File.WriteAllBytesAsync(files.Combine(name), content);

            // No scrolling on a screen this tall: a label stays in sight above its field.
            await using var screen = await TerminalScreen.StartAsync(
                [W3m, "-o", "editor=cat > %s", new Uri(daemon.Loopback, $"/?lang={t.Code}").ToString()], columns: 80, rows: 100);
            await screen.WaitForTextAsync(t["SubmitButton"]);

            await screen.TabToAsync("the file field", (s, y) => s[y].StartsWith(t["FilesLabel"] + " [", StringComparison.Ordinal));
            await screen.KeysAsync("Enter");
            await screen.WaitForAsync("w3m's file name prompt", (s, _) => s[^1].StartsWith("Filename:", StringComparison.Ordinal));
            await screen.TypeAsync(files.Combine(name));
            await screen.KeysAsync("Enter");
            await screen.WaitForAsync("the file field filled", (s, y) => s[y].StartsWith(t["FilesLabel"] + " [/", StringComparison.Ordinal));

            await screen.TabToAsync("the message box", (s, y) => y > 0 && s[y - 1] == t["MessageLabel"] && s[y].TrimStart().StartsWith('['));
            await screen.KeysAsync("Enter");
            await screen.WaitForProgramAsync("cat");   // the editor has the keyboard: what is typed now is the message
            await screen.TypeAsync(lines[0]);
            await screen.KeysAsync("Enter");
            await screen.TypeAsync(lines[1]);
            await screen.KeysAsync("C-d", "C-d");   // the second line sent without a line end, then the end of the text
            await screen.WaitForAsync("the message in its box", (s, _) => s.Any(l => l.Contains("[" + lines[0], StringComparison.Ordinal)));

            await screen.TabToAsync("the button", (s, y) => s[y].Trim() == t["SubmitButton"]);
            await screen.KeysAsync("Enter");
            var receipt = TerminalScreen.Flatten(await screen.WaitForTextAsync(t["ReceiptHeading"]));

            var reference = daemon.Store.ListCommitted().Last().Id;
            Assert.That(receipt, Does.Contain(Flat(t["ReferenceLabel"] + " " + reference)), "the receipt shows the reference under its label");
            Assert.That(receipt, Does.Contain(Flat(t.Format("ReceiptFiles", 1, t.FormatSize(content.Length)))).And.Contain(Flat(t["ReceiptMessageYes"])));
            sent.Add((name, content, string.Join('\n', lines)));
        }

        var opened = daemon.OpenAll();
        Assert.That(opened, Has.Count.EqualTo(2));
        for (var i = 0; i < 2; i++)
        {
            Assert.That(opened[i].Message.Replace("\r\n", "\n"), Is.EqualTo(sent[i].Message));
            var file = opened[i].Files.Single();
            Assert.That(file.OriginalName, Is.EqualTo(sent[i].Name));
            Assert.That(File.ReadAllBytes(Path.Combine(opened[i].Directory, file.SafeName)), Is.EqualTo(sent[i].Content));
        }
    }

    /// <summary>Each piece of text in the page's body, decoded, white space as one space.</summary>
    private static string[] Texts(string html) =>
        Regex.Matches(html[html.IndexOf("<body>", StringComparison.Ordinal)..], ">([^<]+)<")
            .Select(m => Flat(WebUtility.HtmlDecode(m.Groups[1].Value)))
            .Where(s => s.Length > 0).ToArray();

    /// <summary>A text as the terminal shows it after <see cref="TerminalScreen.Flatten"/>: no-break spaces are spaces there.</summary>
    private static string Flat(string text) => TerminalScreen.Flatten([text]);

    private static void InOrder(string text, string what, params string[] parts)
    {
        var at = 0;
        foreach (var part in parts)
        {
            var flat = Flat(part);
            var found = text.IndexOf(flat, at, StringComparison.Ordinal);
            Assert.That(found, Is.GreaterThanOrEqualTo(0), $"{what}: \"{flat}\" is missing, or out of order, in w3m's text:\n{text}");
            at = found + flat.Length;
        }
    }
}
