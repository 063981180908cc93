using System.Reflection;
using System.Text;

namespace OnionDrop.Tor;

/// <summary>What the daemon fills into torrc.template's placeholders.</summary>
public sealed record TorrcValues(string DataDir, int OwnerPid)
{
    /// <summary>The web server's Unix socket's name, which the daemon listens on and tor forwards the onion service to.</summary>
    public const string WebSocketName = "web.sock";

    public string TorDir => Path.Combine(DataDir, "tor");
    public string ControlSocket => Path.Combine(TorDir, "control.sock");
    public string OnionServiceDir => Path.Combine(TorDir, "onion-service");
    /// <summary>Where tor writes the service's address ("xxx.onion") in <see cref="OnionServiceDir"/>.</summary>
    public const string HostnameFileName = "hostname";
    public string HostnameFile => Path.Combine(OnionServiceDir, HostnameFileName);
    /// <summary>The onion service's target: DATA/web.sock unless the daemon keeps it elsewhere.</summary>
    public string WebSocket { get => _webSocket ?? Path.Combine(DataDir, WebSocketName); init => _webSocket = value; }
    private readonly string? _webSocket;
}

/// <summary>
/// torrc.template (top of the repository, shipped beside the executable): an operator-editable torrc with
/// {{DATA_DIR}}, {{WEB_SOCKET}} and {{OWNER_PID}} placeholders. <see cref="Render"/> fills them in, appends the extra lines
/// from configuration and refuses any result that drops or contradicts a security-critical line.
/// </summary>
public static class TorrcTemplate
{
    public const string FileName = "torrc.template";

    /// <summary>The template beside the executable, else the copy built into this library.</summary>
    public static string LoadDefault()
    {
        var beside = Path.Combine(AppContext.BaseDirectory, FileName);
        if (File.Exists(beside)) return File.ReadAllText(beside);
        using var stream = Assembly.GetExecutingAssembly().GetManifestResourceStream(FileName)
                           ?? throw new InvalidOperationException("torrc.template is not embedded in OnionDrop.Tor");
        return new StreamReader(stream).ReadToEnd();
    }

    /// <summary>One rule per security-critical option: the value it must have, and whether it must appear.</summary>
    private sealed record Rule(string Key, Func<TorrcValues, string?> Required, string Why, bool MustAppear = true);

    private static readonly Rule[] Rules =
    [
        new("SocksPort", _ => "0", "this tor serves the onion service only; it must not be a SOCKS proxy"),
        new("DataDirectory", v => v.TorDir, "tor's state and keys stay in the daemon's data directory"),
        new("ControlSocket", v => v.ControlSocket, "the daemon controls tor through its own Unix socket"),
        new("ControlSocketsGroupWritable", _ => "0", "no one but the daemon's user may control tor"),
        new("CookieAuthentication", _ => "1", "the control socket requires cookie authentication"),
        new("CookieAuthFileGroupReadable", _ => "0", "the control cookie is readable by the daemon's user only"),
        new("CookieAuthFile", _ => null, "the control cookie stays in tor's own directory (DATA/tor, 0700)", MustAppear: false),
        new("__OwningControllerProcess", v => v.OwnerPid.ToString(), "tor must exit when the daemon dies"),
        new("HiddenServiceDir", v => v.OnionServiceDir, "the onion service key lives in DATA/tor/onion-service (0700)"),
        new("HiddenServicePort", v => "80 unix:" + v.WebSocket, "the onion service reaches the web server only through its Unix socket"),
        new("HiddenServicePoWDefensesEnabled", _ => "1", "proof-of-work DoS defenses stay on"),
        new("HeartbeatPeriod", _ => "0", "tor's heartbeat would log the onion service's introductions and the bytes received every few hours, " +
            "which date and size sources' uploads in the journal"),
        // Options that must stay off (or at their safe value) if they appear at all.
        new("ControlPort", _ => "0", "a TCP control port would let any local process try to control tor", MustAppear: false),
        new("HashedControlPassword", _ => null, "password control authentication is not used", MustAppear: false),
        new("RunAsDaemon", _ => "0", "the daemon supervises tor in the foreground", MustAppear: false),
        new("ORPort", _ => "0", "an onion service host must not also be a public relay", MustAppear: false),
        new("ExtORPort", _ => "0", "an onion service host must not also be a public relay", MustAppear: false),
        new("DirPort", _ => "0", "an onion service host must not also be a public relay", MustAppear: false),
        // Every other listener tor can open: each would serve whoever reaches it, through this tor.
        new("DNSPort", _ => "0", "this tor serves the onion service only; it must not answer DNS", MustAppear: false),
        new("TransPort", _ => "0", "this tor serves the onion service only; it must not be a transparent proxy", MustAppear: false),
        new("NATDPort", _ => "0", "this tor serves the onion service only; it must not be a proxy", MustAppear: false),
        new("HTTPTunnelPort", _ => "0", "this tor serves the onion service only; it must not be an HTTP proxy", MustAppear: false),
        new("MetricsPort", _ => null, "tor's metrics would show the onion service's traffic to whoever reaches the port", MustAppear: false),
        new("HiddenServiceDirGroupReadable", _ => "0", "the onion service key is readable by the daemon's user only", MustAppear: false),
        new("HiddenServiceSingleHopMode", _ => "0", "the server's location must stay hidden", MustAppear: false),
        new("HiddenServiceNonAnonymousMode", _ => "0", "the server's location must stay hidden", MustAppear: false),
        new("SafeLogging", _ => "1", "tor's log must not hold addresses", MustAppear: false),
        new("ProtocolWarnings", _ => "0", "it raises tor's info-level notes on relays and circuits that break the protocol to warn, " +
            "and the daemon forwards tor's log to the journal", MustAppear: false),
        new("HashedControlSessionPassword", _ => null, "password control authentication is not used", MustAppear: false),
    ];

    /// <summary>Fills in the template, appends <paramref name="extraLines"/>, and checks the result.</summary>
    /// <exception cref="TorConfigurationException">A required line is missing or a line contradicts one; the message names it.</exception>
    public static string Render(string template, TorrcValues values, IEnumerable<string> extraLines, string templateName = FileName)
    {
        CheckPath("DataDir", values.DataDir);
        CheckWebSocketPath(values.DataDir, values.WebSocket);
        var text = template.Replace("{{DATA_DIR}}", values.DataDir).Replace("{{WEB_SOCKET}}", values.WebSocket).Replace("{{OWNER_PID}}", values.OwnerPid.ToString());
        var lines = new List<(string Source, int Number, string Text)>();
        var n = 0;
        foreach (var line in text.Split('\n')) lines.Add((templateName, ++n, line.TrimEnd('\r')));
        n = 0;
        foreach (var line in extraLines)
        {
            n++;
            if (line.Contains('\n')) throw new TorConfigurationException($"TorExtraConfig entry {n} holds more than one line; give one torrc line per entry");
            lines.Add(("TorExtraConfig", n, line));
        }

        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var logToStdout = false;
        foreach (var (source, number, raw) in lines)
        {
            if (raw.Contains('\0'))   // tor stops reading the file there: the lines after it would be checked but not in force
                throw new TorConfigurationException($"{source} line {number}: \"{raw.Replace("\0", "\\0")}\" holds a NUL, at which tor stops reading its torrc");
            var line = WithoutComment(raw).Trim();
            if (line.Length == 0) continue;
            // tor joins the next line to one that ends in '\' (a comment's does not count): the option checked there
            // on its own would become part of this one's value, and tor would run without it.
            if (WithoutComment(raw).TrimEnd('\r').EndsWith('\\'))
                throw new TorConfigurationException($"{source} line {number}: \"{line}\" ends in '\\', which makes tor read the next line as part of it: " +
                    "the daemon checks every line on its own (remove the '\\')");
            if (line.Contains("{{")) throw new TorConfigurationException($"{source} line {number}: unknown placeholder in \"{line}\" (only {{{{DATA_DIR}}}}, {{{{WEB_SOCKET}}}} and {{{{OWNER_PID}}}} exist)");
            if (line.StartsWith('%')) throw new TorConfigurationException($"{source} line {number}: \"{line}\" is not allowed: the daemon must see every option to check it");
            var (written, value) = Split(line);
            var key = OptionName(written);
            if (written.StartsWith('/') && Rules.Any(r => r.Key.Equals(key, StringComparison.OrdinalIgnoreCase)))
                throw new TorConfigurationException($"{source} line {number}: \"{line}\" would clear {key}, which the daemon checks: write the option itself");
            var rule = Rules.FirstOrDefault(r => r.Key.Equals(key, StringComparison.OrdinalIgnoreCase));
            // tor takes the first option whose name starts with an unknown key ("ControlP" is ControlPort).
            if (rule is null && Rules.FirstOrDefault(r => r.Key.StartsWith(key, StringComparison.OrdinalIgnoreCase)) is { } abbreviated)
                throw new TorConfigurationException($"{source} line {number}: \"{line}\": tor would read \"{key}\" as {abbreviated.Key}, which the daemon checks: write its full name");
            if ("Log".StartsWith(key, StringComparison.OrdinalIgnoreCase)) // "l" and "lo" are Log to tor too
            {
                if (Normalize(value).Equals("notice stdout", StringComparison.OrdinalIgnoreCase)) logToStdout = true;
                if (LogsBelowNotice(value))
                    throw new TorConfigurationException($"{source} line {number}: \"{line}\" is not allowed: tor's info and debug logs follow circuits and streams, and the daemon forwards tor's log to the journal");
            }
            if (rule is null) continue;
            var required = rule.Required(values);
            if (required is null || !Normalize(value).Equals(Normalize(required), StringComparison.Ordinal))
                throw new TorConfigurationException($"{source} line {number}: \"{line}\" contradicts the required " +
                    (required is null ? $"absence of {rule.Key}" : $"\"{rule.Key} {required}\"") + $": {rule.Why}");
            if (!seen.Add(rule.Key) && rule.Key.StartsWith("HiddenService", StringComparison.Ordinal))
                throw new TorConfigurationException($"{source} line {number}: \"{line}\" repeats {rule.Key}: the daemon publishes exactly one onion service");
        }
        foreach (var rule in Rules.Where(r => r.MustAppear && !seen.Contains(r.Key)))
            throw new TorConfigurationException($"{templateName} lacks the required line \"{rule.Key} {rule.Required(values)}\": {rule.Why}");
        if (!logToStdout) throw new TorConfigurationException($"{templateName} lacks the required line \"Log notice stdout\": the daemon forwards tor's log from its standard output");

        var output = new StringBuilder("# Generated by oniondrop from ").Append(templateName).Append(" and TorExtraConfig; edits here are overwritten.\n");
        foreach (var (_, _, line) in lines) output.Append(line).Append('\n');
        return output.ToString();
    }

    /// <summary>
    /// A path goes into torrc as it is, and tor reads it up to the first space or '#' (a quoted value does not help: its
    /// socket options split the path again), and a line break would start another option: refused with the reason,
    /// not left to tor's "Unrecognized ControlSocketPort option" or to a contradiction of the line it cut short.
    /// ADD_ONION (the system tor, <paramref name="addOnion"/>) takes a '#', but no space, quote, control or non-ASCII
    /// character: "Cannot parse keyword argument(s)", tor 0.4.9.
    /// </summary>
    /// <exception cref="TorConfigurationException">The path holds such a character; the message names the setting.</exception>
    public static void CheckPath(string setting, string path, bool addOnion = false)
    {
        foreach (var c in path)
        {
            var what = c is ' ' or '\t' ? "a space" : char.IsControl(c) ? "a control character" : c == '#' && !addOnion ? "'#'"
                : !addOnion ? null : c is '"' or '\'' ? "a quote" : !char.IsAscii(c) ? "a non-ASCII character" : null;
            if (what is null) continue;
            var shown = string.Concat(path.Select(ch => char.IsControl(ch) ? $"\\x{(int)ch:x2}" : ch.ToString()));   // one line
            throw new TorConfigurationException($"{setting} \"{shown}\" holds {what}, which tor cannot read in " + (addOnion
                ? "ADD_ONION (the onion service's target, the web socket): choose a path of ASCII letters, digits and punctuation other than quotes"
                : "a path in torrc: choose a path without spaces, '#' or control characters"));
        }
    }

    /// <summary>The web socket's directory, named by the setting that put it there: the data directory, unless WebSocketDirectory says otherwise.</summary>
    public static void CheckWebSocketPath(string dataDir, string webSocket, bool addOnion = false) =>
        CheckPath(webSocket == Path.Combine(dataDir, TorrcValues.WebSocketName) ? "DataDir" : "WebSocketDirectory", Path.GetDirectoryName(webSocket)!, addOnion);

    /// <summary>
    /// The option a line sets, as tor reads it: "+Option" (append) and "/Option" (clear) name Option, and so
    /// does "__Option", tor's unsaved twin of a listener option (__ControlPort, __SocksPort ...). Checked under
    /// its plain name, a prefixed line cannot slip past its rule.
    /// </summary>
    private static string OptionName(string written)
    {
        var key = written.TrimStart('+', '/');
        if (key.StartsWith("__", StringComparison.Ordinal) && !Rules.Any(r => r.Key.Equals(key, StringComparison.OrdinalIgnoreCase)))
            key = key[2..];
        return key;
    }

    /// <summary>The line up to a '#' outside double quotes: tor reads "CookieAuthentication#" as the option with no value.</summary>
    private static string WithoutComment(string line)
    {
        var quoted = false;
        for (var i = 0; i < line.Length; i++)
        {
            if (line[i] == '"' && (i == 0 || line[i - 1] != '\\')) quoted = !quoted;
            else if (line[i] == '#' && !quoted) return line[..i];
        }
        return line;
    }

    /// <summary>
    /// Whether a Log value sends info or debug anywhere: each severity group before the destination counts
    /// ("notice [circ]debug stdout", "info-err file x").
    /// </summary>
    public static bool LogsBelowNotice(string value)
    {
        foreach (var word in value.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries))
        {
            if (word.ToLowerInvariant() is "stdout" or "stderr" or "file" or "syslog" or "android") break;
            var least = word[(word.LastIndexOf(']') + 1)..].Split('-')[0].ToLowerInvariant();
            if (least is "debug" or "info") return true;
        }
        return false;
    }

    private static (string Key, string Value) Split(string line)
    {
        var i = 0;
        while (i < line.Length && !char.IsWhiteSpace(line[i])) i++;
        return (line[..i], line[i..].Trim());
    }

    /// <summary>Collapses runs of whitespace and strips quotes around a whole value, as tor reads it.</summary>
    private static string Normalize(string value)
    {
        var v = string.Join(' ', value.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));
        if (v.Length >= 2 && v[0] == '"' && v[^1] == '"') v = v[1..^1];
        return v;
    }
}

/// <summary>The torrc we would give tor is unsafe or malformed; the message names the line.</summary>
public sealed class TorConfigurationException(string message) : Exception(message);
