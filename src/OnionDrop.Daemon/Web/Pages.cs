using System.Text;
using System.Text.Encodings.Web;
using System.Text.Unicode;
using OnionDrop.Daemon.Hosting;

namespace OnionDrop.Daemon.Web;

/// <summary>A page's title and body, before the shared layout wraps it.</summary>
/// <param name="LanguageSwitch">false on the receipt: its link would load the empty form, and the receipt (a POST's
/// answer, never cached) would be gone with its reference</param>
public sealed record Page(int Status, string Title, string Body, bool LanguageSwitch = true);

/// <summary>The form page's bytes before and after its one-time token.</summary>
public sealed record RenderedForm(byte[] BeforeToken, byte[] AfterToken);

/// <summary>
/// The source's pages as plain HTML: no script, no inline style, no resource from another origin, so they
/// work at Tor Browser's "Safest" level and in a text browser. Every dynamic value is HTML-encoded.
/// </summary>
public sealed class Pages(OnionDropOptions options)
{
    private static readonly HtmlEncoder Html = HtmlEncoder.Create(UnicodeRanges.All);

    private static string E(string s) => Html.Encode(s);

    /// <summary>A token-shaped stand-in (RecentSubmissions.IsToken) that HTML encoding leaves as it is.</summary>
    private const string TokenStandIn = "00000000000000000000000000000000";

    private readonly System.Collections.Concurrent.ConcurrentDictionary<PageLanguage, RenderedForm> _forms = new();

    /// <summary>
    /// The whole form page as UTF-8, rendered once per language, around its token: GET / is what every visit
    /// loads, and rendering it afresh each time (resources, HTML encoding) was most of its cost.
    /// </summary>
    public RenderedForm FormPage(PageLanguage t) => _forms.GetOrAdd(t, language =>
    {
        var html = Encoding.UTF8.GetBytes(Render(language, Form(language, TokenStandIn)));
        var at = html.AsSpan().IndexOf(Encoding.ASCII.GetBytes($"value=\"{TokenStandIn}\"")) + "value=\"".Length;
        return new RenderedForm(html[..at], html[(at + TokenStandIn.Length)..]);
    });

    /// <param name="once">the form's one-time token, which makes the same form sent twice one submission (RecentSubmissions)</param>
    public Page Form(PageLanguage t, string once)
    {
        var welcome = string.IsNullOrWhiteSpace(options.WelcomeText) ? "" : $"<p class=\"welcome\">{E(options.WelcomeText.Trim())}</p>\n";
        // MaxMessageChars 0 turns messages off: a box whose every text would be refused is no box to show.
        // maxlength cuts a long text silently, as it is typed or pasted: the hint says where.
        // The label has a block of its own: a text browser ignores the style sheet, and an inline label beside a
        // box of several lines is drawn beside its last line, after the box (w3m).
        var message = options.MaxMessageChars == 0 ? "" : $"""
            <div><label for="message">{E(t["MessageLabel"])}</label></div>
            <textarea id="message" name="{UploadHandler.MessageField}" rows="8" cols="60" maxlength="{options.MaxMessageChars}" aria-describedby="message-hint"></textarea>
            <p class="hint" id="message-hint">{E(t["MessageHint"] + " " + t.FormatCount("MessageLimit", options.MaxMessageChars, options.MaxMessageChars))}</p>

            """;
        var multiple = options.MaxFiles > 1 ? " multiple" : "";
        var body = $"""
            <h1>{E(t["FormHeading"])}</h1>
            {welcome}<section class="card">
            <h2>{E(t["WhoHeading"])}</h2>
            <p>{E(t.Format("WhoText", options.NewsroomName))}</p>
            <h2>{E(t["WhatHeading"])}</h2>
            <ul>
            <li>{E(t["What1"])}</li>
            <li>{E(t["What2"])}</li>
            <li>{E(t["What3"])}</li>
            </ul>
            </section>
            <section class="card advice">
            <h2>{E(t["AdviceHeading"])}</h2>
            <ul>
            <li>{E(t["Advice1"])}</li>
            <li>{E(t["Advice2"])}</li>
            <li>{E(t["Advice3"])}</li>
            </ul>
            </section>
            <form class="card" method="post" action="/?lang={t.Code}" enctype="multipart/form-data">
            <input type="hidden" name="{UploadHandler.OnceField}" value="{E(once)}">
            <h2>{E(t["SubmissionHeading"])}</h2>
            <label for="files">{E(t["FilesLabel"])}</label>
            <input type="file" id="files" name="{UploadHandler.FilesField}"{multiple} aria-describedby="files-hint">
            <p class="hint" id="files-hint">{E(t.FormatCount("FilesHint", options.MaxFiles, options.MaxFiles, t.FormatSize(options.MaxSubmissionBytes)))}</p>
            {message}<button type="submit">{E(t["SubmitButton"])}</button>
            <p class="note">{E(t["SendingNote"])}</p>
            </form>
            """;
        return new Page(200, t["FormTitle"], body);
    }

    /// <param name="repeat">the same form sent again (a reload): nothing new was stored</param>
    public Page Receipt(PageLanguage t, string reference, int files, long bytes, bool hasMessage, bool repeat = false)
    {
        var messageLine = options.MaxMessageChars == 0 ? "" : "<br>" + E(t[hasMessage ? "ReceiptMessageYes" : "ReceiptMessageNo"]);
        var repeated = repeat ? $"<p>{E(t["ReceiptRepeat"])}</p>\n" : "";
        var body = $"""
            <section class="card">
            <p class="status">{E(t["ReceiptTitle"])}</p>
            <h1>{E(t["ReceiptHeading"])}</h1>
            <p>{E(t["ReferenceLabel"])}</p>
            <p class="reference" id="reference">{E(reference)}</p>
            <p>{E(files == 0 ? t["ReceiptFilesNone"] : t.Format("ReceiptFiles", files, t.FormatSize(bytes)))}{messageLine}</p>
            {repeated}<h2>{E(t["ExpectHeading"])}</h2>
            <ul>
            <li>{E(t["Expect1"])}</li>
            <li>{E(t["Expect2"])}</li>
            <li>{E(t["Expect3"])}</li>
            </ul>
            <p><a href="/?lang={t.Code}">{E(t["SendAnother"])}</a></p>
            </section>
            """;
        return new Page(200, t["ReceiptTitle"], body, LanguageSwitch: false);
    }

    /// <param name="textKey">Resource key of the explanation; formatted with <paramref name="args"/>.</param>
    public Page Error(PageLanguage t, int status, string titleKey, string textKey, bool nothingStored, params object[] args)
    {
        var stored = nothingStored ? $"<p>{E(t["NothingStored"])}</p>\n" : "";
        var body = $"""
            <section class="card error">
            <h1>{E(t[titleKey])}</h1>
            <p>{E(Text(t, textKey, args))}</p>
            {stored}<p><a href="/?lang={t.Code}">{E(t["BackToForm"])}</a></p>
            </section>
            """;
        return new Page(status, t[titleKey], body);
    }

    private static string Text(PageLanguage t, string key, object[] args)
    {
        var shown = args.Select(a => a switch { ByteSize size => t.FormatSize(size.Bytes), Quantity q => q.N, _ => a }).ToArray();
        return args is [Quantity count, ..] ? t.FormatCount(key, count.N, shown) : t.Format(key, shown);
    }

    /// <summary>The shared layout: newsroom name, language switch (plain links to the form, no cookie), footer.</summary>
    public string Render(PageLanguage t, Page page)
    {
        // No switch, no <nav>: an empty one is still announced as "navigation" by a screen reader.
        var languageSwitch = !page.LanguageSwitch ? "" : "\n<nav class=\"lang\">" + string.Join(" ", PageLanguage.All.Where(l => l != t).Select(l =>
            $"<a href=\"/?lang={l.Code}\" hreflang=\"{l.Code}\" lang=\"{l.Code}\">{E(l.NativeName)}</a>")) + "</nav>";
        var html = new StringBuilder(8 * 1024);
        html.Append($"""
            <!DOCTYPE html>
            <html lang="{t.Code}">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <meta name="referrer" content="no-referrer">
            <title>{E(page.Title)} · {E(options.NewsroomName)}</title>
            <link rel="stylesheet" href="/style.css">
            <link rel="icon" href="data:,">
            </head>
            <body>
            <header><div class="wrap">
            <p class="brand">{E(options.NewsroomName)} <span>{E(t["Tagline"])}</span></p>{languageSwitch}
            </div></header>
            <main class="wrap">
            {page.Body}
            </main>
            <footer><div class="wrap">{E(t.Format("Footer", options.NewsroomName))}</div></footer>
            </body>
            </html>

            """);
        return html.ToString();
    }
}
