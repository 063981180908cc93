using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>
/// What the launched tor actually runs with, asked over its control socket once it is up: TorrcTemplate checks
/// the lines before tor reads them, and this checks, after, what tor made of them (the two readers could differ:
/// tor also takes abbreviations, aliases and prefixes). Anything off stops the start. (The other checked settings,
/// such as the *GroupReadable ones and HashedControlPassword, are checked on the lines only.)
/// </summary>
public static class RunningConfiguration
{
    /// <summary>Every listener tor can open (GETINFO net/listeners/*): only the control socket may be there.</summary>
    public static readonly string[] Listeners =
        ["socks", "control", "dns", "trans", "natd", "httptunnel", "or", "dir", "extor", "metrics"];

    /// <summary>The GETINFO keys for <see cref="Listeners"/>.</summary>
    public static IEnumerable<string> ListenerKeys => Listeners.Select(kind => "net/listeners/" + kind);

    public static readonly string[] Options =
        ["HiddenServiceOptions", "HiddenServiceSingleHopMode", "HiddenServiceNonAnonymousMode", "SafeLogging", "CookieAuthentication", "HeartbeatPeriod", "ProtocolWarnings", "Log"];

    /// <summary>Asks the running tor (GETINFO net/listeners/*, GETCONF) and returns what it runs with that the daemon does not allow.</summary>
    public static async Task<IReadOnlyList<string>> ProblemsAsync(TorControlClient control, TorrcValues values, CancellationToken cancellationToken = default)
    {
        var listeners = await control.GetInfoListsAsync(ListenerKeys, cancellationToken);
        var options = await control.GetConfAsync(Options, cancellationToken);
        return Problems(values, listeners, options);
    }

    public static IReadOnlyList<string> Problems(TorrcValues values, IReadOnlyDictionary<string, IReadOnlyList<string>> listeners,
        IReadOnlyList<KeyValuePair<string, string>> options)
    {
        var problems = new List<string>();
        foreach (var kind in Listeners)
        {
            foreach (var address in listeners.GetValueOrDefault("net/listeners/" + kind, []))
                if (!(kind == "control" && address == "unix:" + values.ControlSocket))
                    problems.Add($"a {kind} listener on {address}");
        }

        string[] All(string key) => options.Where(o => o.Key.Equals(key, StringComparison.OrdinalIgnoreCase)).Select(o => o.Value.Trim('"')).ToArray();
        if (All("HiddenServiceDir") is not [var dir] || dir != values.OnionServiceDir)
            problems.Add($"onion services in {string.Join(", ", All("HiddenServiceDir"))} (only {values.OnionServiceDir})");
        var target = "80 unix:" + values.WebSocket;
        if (All("HiddenServicePort") is var ports && (ports.Length == 0 || ports.Any(p => p != target)))
            problems.Add($"onion service ports {string.Join(", ", ports)} (only {target})");
        // Listed in HiddenServiceOptions only when set: tor's default is off.
        if (All("HiddenServicePoWDefensesEnabled") is not ["1"] and var pow)
            problems.Add($"HiddenServicePoWDefensesEnabled {(pow.Length == 0 ? "0 (tor's default)" : string.Join(",", pow))} (must be 1)");
        foreach (var (key, required) in new[] { ("HiddenServiceSingleHopMode", "0"), ("HiddenServiceNonAnonymousMode", "0"), ("SafeLogging", "1"), ("CookieAuthentication", "1"), ("HeartbeatPeriod", "0"), ("ProtocolWarnings", "0") })
            if (All(key) is var set && set.Any(v => v != required))
                problems.Add($"{key} {string.Join(",", set)} (must be {required})");
        foreach (var log in All("Log").Where(TorrcTemplate.LogsBelowNotice))
            problems.Add($"Log {log} (nothing below notice)");
        return problems;
    }
}
