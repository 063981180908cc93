using System.Globalization;
using System.Text;

namespace OnionDrop.Sealing;

/// <summary>
/// Turns a name chosen by whoever sealed a submission into one that is safe to create on the journalist's
/// machine, while keeping it recognisable: no path separators or traversal, no control, bidi or other
/// invisible format characters, no hidden (dot) or option-like (dash) names, no Windows device or
/// reserved characters, at most <see cref="MaxBytes"/> UTF-8 bytes with the extension kept.
/// </summary>
public static class SafeFileName
{
    public const int MaxBytes = 200;   // under NAME_MAX (255) with room for " (NN)"
    private const string Replacement = "_";
    private static readonly string[] DeviceNames =
        ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$",
         .. Enumerable.Range(0, 10).SelectMany(i => new[] { $"COM{i}", $"LPT{i}" }),
         "COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³"];

    /// <summary>
    /// Characters that change how the text around them shows without showing themselves: format characters (bidi
    /// overrides, zero-width ones) and line and paragraph separators. Names, manifest.json and the journalist's
    /// terminal all keep them out.
    /// </summary>
    public static bool IsInvisible(UnicodeCategory category) =>
        category is UnicodeCategory.Format or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;

    public static string Neutralise(string name, string fallback = "unnamed")
    {
        name = HeadAndTail(name);
        var sb = new StringBuilder(name.Length);
        foreach (var rune in WithoutNoncharacters(name).Normalize(NormalizationForm.FormC).EnumerateRunes())
        {
            var category = Rune.GetUnicodeCategory(rune);
            var unsafeRune = Rune.IsControl(rune) || IsInvisible(category)
                || category is UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                || rune == Rune.ReplacementChar
                || (rune.IsAscii && "/\\:*?\"<>|".Contains((char)rune.Value));
            if (unsafeRune) sb.Append(Replacement);
            else if (Rune.IsWhiteSpace(rune)) sb.Append(' ');   // odd spaces (NBSP, ideographic...) become plain ones
            else AppendRune(sb, rune);
        }
        // Windows drops trailing dots and spaces; leading spaces hide in listings.
        var s = sb.ToString().Trim(' ').TrimEnd('.', ' ');
        if (s.Length == 0) s = fallback;
        if (s[0] is '.' or '-' or '~') s = Replacement + s;   // hidden files, options to other tools, home dirs
        var stem = s.Split('.')[0].TrimEnd(' ');
        if (DeviceNames.Contains(stem, StringComparer.OrdinalIgnoreCase)) s = Replacement + s;
        return Shorten(s, MaxBytes);
    }

    /// <summary>
    /// A name longer than <see cref="LongHead"/> + <see cref="LongTail"/> characters is neutralised from those at its
    /// start and its end alone: what is saved keeps at most <see cref="MaxBytes"/>, from its start and its extension.
    /// A hostile submission's thousand names of 64 KiB, each copied whole five times over, cost a second of CPU and
    /// tens of MB of garbage.
    /// </summary>
    private const int LongHead = 1024, LongTail = 64;

    private static string HeadAndTail(string name)
    {
        if (name.Length <= LongHead + LongTail) return name;
        var head = char.IsHighSurrogate(name[LongHead - 1]) ? LongHead - 1 : LongHead;
        var tail = char.IsLowSurrogate(name[^LongTail]) ? name.Length - LongTail + 1 : name.Length - LongTail;
        return string.Concat(name.AsSpan(0, head), name.AsSpan(tail));
    }

    /// <summary>
    /// Lone surrogates (possible in a manifest's JSON escapes) and noncharacters (U+FDD0..U+FDEF, and U+FFFE and
    /// U+FFFF in every plane: valid UTF-8 that a browser sends as typed) as U+FFFD, which <see cref="Neutralise"/>
    /// then replaces: .NET's Normalize throws on lone surrogates and on U+FFFE, and one such name must not keep a
    /// submission, or a whole run of <c>oniondrop open</c>, from opening.
    /// </summary>
    private static string WithoutNoncharacters(string name)
    {
        var clean = true;
        foreach (var rune in name.EnumerateRunes()) clean &= rune != Rune.ReplacementChar && !IsNoncharacter(rune);
        if (clean) return name;
        var sb = new StringBuilder(name.Length);
        foreach (var rune in name.EnumerateRunes()) sb.Append(IsNoncharacter(rune) ? Rune.ReplacementChar : rune); // lone surrogates come as U+FFFD
        return sb.ToString();
    }

    private static bool IsNoncharacter(Rune rune) => rune.Value is >= 0xFDD0 and <= 0xFDEF || (rune.Value & 0xFFFE) == 0xFFFE;

    /// <summary>
    /// <see cref="Neutralise"/> for a file's name as a source's browser sent it. Some send the whole local path
    /// (old browsers, some text browsers: "C:\Users\jdupont\Desktop\memo.docx", "/home/jdupont/memo.docx"),
    /// which often names the source: the saved name keeps only its last part. The manifest keeps the name as sent.
    /// </summary>
    public static string ForFile(string sent, string fallback)
    {
        var last = sent[(sent.LastIndexOfAny(['/', '\\']) + 1)..];
        return last.Trim() is "" or "." or ".." ? fallback : Neutralise(last, fallback); // "C:\\Users\\jdupont\\" names no file, only its owner
    }

    /// <summary>
    /// <see cref="ForFile(string, string)"/> for a name as the UTF-8 it came in, of which a long one is decoded only as
    /// far as <see cref="Neutralise"/> looks (a character takes at most 4 bytes): a name of 64 KiB is 128 KiB as a string.
    /// </summary>
    public static string ForFile(ReadOnlySpan<byte> sent, string fallback)
    {
        var last = sent[(sent.LastIndexOfAny((byte)'/', (byte)'\\') + 1)..];
        if (last.Length <= 4 * (LongHead + LongTail)) return ForFile(Encoding.UTF8.GetString(last), fallback);
        var head = 4 * LongHead;
        while ((last[head] & 0xC0) == 0x80) head--;   // not inside a character's bytes
        var tail = last.Length - 4 * LongTail;
        while ((last[tail] & 0xC0) == 0x80) tail++;
        return ForFile(Encoding.UTF8.GetString(last[..head]) + Encoding.UTF8.GetString(last[tail..]), fallback);
    }

    /// <summary>Cuts the stem (keeping a short extension) so the name fits in <paramref name="maxBytes"/> UTF-8 bytes.</summary>
    public static string Shorten(string s, int maxBytes)
    {
        if (Encoding.UTF8.GetByteCount(s) <= maxBytes) return s;
        var dot = s.LastIndexOf('.');
        var ext = dot > 0 && Encoding.UTF8.GetByteCount(s[dot..]) <= 16 ? s[dot..] : "";
        var budget = maxBytes - Encoding.UTF8.GetByteCount(ext) - Encoding.UTF8.GetByteCount("…");
        var stem = new StringBuilder();
        var used = 0;
        foreach (var rune in s[..(s.Length - ext.Length)].EnumerateRunes())
        {
            if (used + rune.Utf8SequenceLength > budget) break;
            AppendRune(stem, rune);
            used += rune.Utf8SequenceLength;
        }
        return stem.Append('…').Append(ext).ToString();
    }

    /// <summary>
    /// StringBuilder has no Append(Rune): Append(rune) boxed each one and appended its ToString(), 52 bytes of garbage
    /// per character (3.4 MB for one 64 KiB name).
    /// </summary>
    private static void AppendRune(StringBuilder sb, Rune rune)
    {
        Span<char> units = stackalloc char[2];
        sb.Append(units[..rune.EncodeToUtf16(units)]);
    }

    /// <summary>"name.ext", "name (2).ext", ...: the first not in <paramref name="taken"/> (which it joins).</summary>
    /// <param name="nextNumber">
    /// per name (compared as <paramref name="taken"/> compares), the number its last duplicate got, plus one: the
    /// search starts there, every lower one being taken already. Without it, 10,000 files of one name in a hostile
    /// submission cost 50 million tries (6 s of CPU).
    /// </param>
    public static string Unique(string safe, ISet<string> taken, IDictionary<string, int>? nextNumber = null)
    {
        if (taken.Add(safe)) return safe;
        var dot = safe.LastIndexOf('.');
        var (stem, ext) = dot > 0 ? (safe[..dot], safe[dot..]) : (safe, "");
        var shortStem = Shorten(stem, MaxBytes - 8 - Encoding.UTF8.GetByteCount(ext));
        for (var i = nextNumber is not null && nextNumber.TryGetValue(safe, out var next) ? next : 2; ; i++)
        {
            var candidate = shortStem + $" ({i})" + ext;
            if (!taken.Add(candidate)) continue;
            if (nextNumber is not null) nextNumber[safe] = i + 1;
            return candidate;
        }
    }
}
