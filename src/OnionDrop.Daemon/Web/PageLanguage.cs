using System.Globalization;
using System.Resources;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// The language a page is shown in: "?lang=" if present (the visible switch link: no cookie remembers
/// it), else the browser's Accept-Language, else English. Strings live in Resources/Strings*.resx.
/// Tor Browser asks for English by default, which is why the switch link matters.
/// </summary>
public sealed class PageLanguage
{
    private static readonly ResourceManager Resources = new("OnionDrop.Daemon.Resources.Strings", typeof(PageLanguage).Assembly);

    public static readonly PageLanguage English = new("en", "English", CultureInfo.GetCultureInfo("en-GB"), n => n == 1);
    // French puts 0 in the singular too: "au plus 0 caractère".
    public static readonly PageLanguage French = new("fr", "Français", CultureInfo.GetCultureInfo("fr-FR"), n => n is 0 or 1);
    public static readonly IReadOnlyList<PageLanguage> All = [English, French];

    public string Code { get; }
    public string NativeName { get; }
    public CultureInfo Culture { get; }
    private readonly Func<long, bool> _singular;

    private PageLanguage(string code, string nativeName, CultureInfo culture, Func<long, bool> singular) =>
        (Code, NativeName, Culture, _singular) = (code, nativeName, culture, singular);

    /// <summary>A string from the resources; a missing one is a build defect, shown as its key.</summary>
    public string this[string key] => Resources.GetString(key, Culture) ?? key;

    public string Format(string key, params object[] args) => string.Format(Culture, this[key], args);

    /// <summary>Like <see cref="Format"/>, from "<paramref name="key"/>One" when <paramref name="count"/> takes the singular.</summary>
    public string FormatCount(string key, long count, params object[] args) => Format(_singular(count) ? key + "One" : key, args);

    public static PageLanguage For(HttpRequest request)
    {
        if (request.Query.TryGetValue("lang", out var asked) && FromCode(asked.ToString()) is { } chosen)
            return chosen;
        if (StringWithQualityHeaderValue.TryParseList(request.Headers.AcceptLanguage, out var accepted))
        {
            foreach (var value in accepted.Where(v => v.Quality is not 0).OrderByDescending(v => v.Quality ?? 1))
                if (FromCode(value.Value.ToString()) is { } match)
                    return match;
        }
        return English;
    }

    private static PageLanguage? FromCode(string code)
    {
        var primary = code.Split('-', 2)[0].Trim();
        return All.FirstOrDefault(l => l.Code.Equals(primary, StringComparison.OrdinalIgnoreCase));
    }

    /// <summary>Sizes in the reader's words: "1.5 GB" / "1,5 Go" (binary multiples, as file managers mostly show).</summary>
    public string FormatSize(long bytes)
    {
        string[] units = [this["UnitBytes"], this["UnitKB"], this["UnitMB"], this["UnitGB"], this["UnitTB"]];
        double value = bytes;
        var unit = 0;
        while (value >= 1024 && unit < units.Length - 1) { value /= 1024; unit++; }
        var number = unit == 0 || value >= 100 ? value.ToString("0", Culture) : value.ToString("0.#", Culture);
        return number + "\u00a0" + units[unit];
    }
}
