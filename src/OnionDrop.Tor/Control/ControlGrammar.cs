using System.Text;

namespace OnionDrop.Tor.Control;

/// <summary>
/// The small pieces of the control-spec grammar shared by replies and events: space-separated words,
/// <c>Keyword=Value</c> pairs, and QuotedString (control-spec §2.1 "Description format": a string in
/// double quotes with backslash escapes; tor writes C-style escapes such as \n, \t, \" and \\ and octal
/// \NNN, see §2.1.1 "Notes on an escaping bug").
/// </summary>
public static class ControlGrammar
{
    /// <summary>
    /// Splits a reply line into leading positional words and the Keyword=Value pairs after them
    /// (e.g. <c>BOOTSTRAP PROGRESS=10 TAG=conn SUMMARY="Connecting to a relay"</c>). Values may be quoted.
    /// A word without "=" after the first pair is kept as a positional word.
    /// </summary>
    public static (IReadOnlyList<string> Words, IReadOnlyDictionary<string, string> Pairs) ParseArguments(string text)
    {
        var words = new List<string>();
        var pairs = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var i = 0;
        while (true)
        {
            while (i < text.Length && text[i] == ' ') i++;
            if (i >= text.Length) break;
            if (text[i] == '"')
            {
                words.Add(ReadQuoted(text, ref i));
                continue;
            }
            var start = i;
            while (i < text.Length && text[i] != ' ' && text[i] != '=') i++;
            var word = text[start..i];
            if (i < text.Length && text[i] == '=')
            {
                i++;
                string value;
                if (i < text.Length && text[i] == '"') value = ReadQuoted(text, ref i);
                else
                {
                    var valueStart = i;
                    while (i < text.Length && text[i] != ' ') i++;
                    value = text[valueStart..i];
                }
                pairs[word] = value;
            }
            else words.Add(word);
        }
        return (words, pairs);
    }

    /// <summary>Parses a "key=value" reply line (GETINFO, ADD_ONION); the value may be a QuotedString.</summary>
    public static (string Key, string Value) ParseKeyValue(string text)
    {
        var eq = text.IndexOf('=');
        if (eq < 0) return (text, "");
        var key = text[..eq];
        var rest = text[(eq + 1)..];
        if (rest.StartsWith('"'))
        {
            var i = 0;
            return (key, ReadQuoted(rest, ref i));
        }
        return (key, rest);
    }

    /// <summary>A list of QuotedStrings (or bare words) separated by spaces, as GETINFO net/listeners/* gives: <c>"unix:/a" "127.0.0.1:9050"</c>.</summary>
    public static IReadOnlyList<string> ParseList(string text)
    {
        var items = new List<string>();
        var i = 0;
        while (true)
        {
            while (i < text.Length && text[i] is ' ' or '\n') i++;
            if (i >= text.Length) return items;
            if (text[i] == '"') { items.Add(ReadQuoted(text, ref i)); continue; }
            var start = i;
            while (i < text.Length && text[i] is not (' ' or '\n')) i++;
            items.Add(text[start..i]);
        }
    }

    /// <summary>
    /// Reads a QuotedString starting at text[i] == '"', leaving i after the closing quote. An octal escape is one byte:
    /// tor escapes each byte outside printable ASCII, so "d\303\251" is the UTF-8 of "dé".
    /// </summary>
    public static string ReadQuoted(string text, ref int i)
    {
        if (text[i] != '"') throw new TorControlProtocolException("expected a quoted string");
        i++;
        var bytes = new List<byte>();
        while (true)
        {
            var run = text.AsSpan(i).IndexOfAny('"', '\\');
            if (run < 0) throw new TorControlProtocolException("unterminated quoted string");
            bytes.AddRange(Encoding.UTF8.GetBytes(text, i, run));
            i += run;
            if (text[i++] == '"') return Encoding.UTF8.GetString(bytes.ToArray());
            if (i >= text.Length) throw new TorControlProtocolException("unterminated escape in quoted string");
            var e = text[i++];
            switch (e)
            {
                case 'n': bytes.Add((byte)'\n'); break;
                case 'r': bytes.Add((byte)'\r'); break;
                case 't': bytes.Add((byte)'\t'); break;
                case >= '0' and <= '7':
                    // Octal \N, \NN or \NNN (tor's esc_for_log writes three digits).
                    var value = e - '0';
                    for (var k = 0; k < 2 && i < text.Length && text[i] is >= '0' and <= '7'; k++) value = value * 8 + (text[i++] - '0');
                    bytes.Add((byte)value);
                    break;
                default: bytes.AddRange(Encoding.UTF8.GetBytes(e.ToString())); break; // \" \\ \' and anything else: the character itself
            }
        }
    }

    /// <summary>
    /// Quotes a value as a QuotedString (control-spec §2.1). The daemon sends no quoted argument: the tests use it to
    /// write tor's side of a conversation, and to check <see cref="ReadQuoted"/> against it.
    /// </summary>
    public static string Quote(string value)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in value)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"').ToString();
    }
}
