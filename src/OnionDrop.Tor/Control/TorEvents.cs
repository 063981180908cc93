namespace OnionDrop.Tor.Control;

/// <summary>Severity of a tor log line or status event (control-spec §4.1.5 and §4.1.10).</summary>
public enum TorSeverity { Debug, Info, Notice, Warn, Err }

/// <summary>An asynchronous event (a 650 reply, control-spec §4.1), parsed by <see cref="TorEvent.Parse"/>.</summary>
public abstract record TorEvent(string Keyword)
{
    /// <summary>Parses a 6yz reply into the most specific record we know; others become <see cref="UnrecognizedEvent"/>.</summary>
    public static TorEvent Parse(ControlReply reply)
    {
        var first = reply.Lines[0];
        var space = first.Text.IndexOf(' ');
        var keyword = space < 0 ? first.Text : first.Text[..space];
        var rest = space < 0 ? "" : first.Text[(space + 1)..];
        // A multi-line event (650+KEYWORD ... data ... 650 OK) keeps its body in Data.
        if (first.Data is { } data) rest = rest.Length == 0 ? data : rest + "\n" + data;

        return keyword switch
        {
            "STATUS_GENERAL" or "STATUS_CLIENT" or "STATUS_SERVER" => StatusEvent.ParseBody(keyword, rest),
            "HS_DESC" => HsDescEvent.ParseBody(rest),
            "DEBUG" or "INFO" or "NOTICE" or "WARN" or "ERR" => new LogEvent(ParseSeverity(keyword), rest),
            _ => new UnrecognizedEvent(keyword, rest),
        };
    }

    public static TorSeverity ParseSeverity(string s) => s.ToUpperInvariant() switch
    {
        "DEBUG" => TorSeverity.Debug,
        "INFO" => TorSeverity.Info,
        "NOTICE" => TorSeverity.Notice,
        "WARN" or "WARNING" => TorSeverity.Warn,
        "ERR" or "ERROR" => TorSeverity.Err,
        _ => TorSeverity.Notice,
    };
}

/// <summary>
/// STATUS_GENERAL / STATUS_CLIENT / STATUS_SERVER (control-spec §4.1.10 "Status events"):
/// <c>"650" SP StatusType SP StatusSeverity SP StatusAction [SP StatusArguments]</c>.
/// </summary>
public sealed record StatusEvent(string Keyword, TorSeverity Severity, string Action, IReadOnlyDictionary<string, string> Arguments)
    : TorEvent(Keyword)
{
    internal static StatusEvent ParseBody(string keyword, string body)
    {
        var (words, pairs) = ControlGrammar.ParseArguments(body);
        if (words.Count < 2) throw new TorControlProtocolException($"malformed {keyword} event: {body}");
        return new StatusEvent(keyword, ParseSeverity(words[0]), words[1], pairs);
    }

    /// <summary>The bootstrap status if this is a STATUS_CLIENT BOOTSTRAP event.</summary>
    public BootstrapStatus? Bootstrap => Action == "BOOTSTRAP" ? BootstrapStatus.From(Severity, Arguments) : null;
}

/// <summary>
/// Bootstrap progress (control-spec §4.1.10, "BOOTSTRAP" under STATUS_CLIENT; also the answer to
/// <c>GETINFO status/bootstrap-phase</c>, §3.9): PROGRESS=num TAG=Keyword SUMMARY=String
/// [WARNING=String REASON=Keyword COUNT=num RECOMMENDATION=Keyword HOST=... HOSTADDR=...].
/// </summary>
public sealed record BootstrapStatus(int Progress, string Tag, string Summary, TorSeverity Severity, string? Warning, string? Reason)
{
    public bool IsDone => Progress >= 100;

    /// <summary>
    /// The warning in words an operator can act on, or null without one. tor's WARNING is sometimes a sentence
    /// ("Connection refused") and sometimes just its reason keyword (control-spec §5.4, "DONE" when a relay
    /// closed the connection), which alone means nothing to an operator.
    /// </summary>
    public string? Problem => Warning is null ? null
        : (Reason is { } reason && Reason.Equals(Warning, StringComparison.Ordinal) && ReasonWords.TryGetValue(reason, out var words) ? words : Warning)
          + $" at {Progress}% ({Summary}; tor's reason: {Reason ?? "none given"})";

    private static readonly Dictionary<string, string> ReasonWords = new(StringComparer.Ordinal)
    {
        ["DONE"] = "a relay closed the connection",
        ["CONNECTREFUSED"] = "a relay refused the connection",
        ["IDENTITY"] = "a relay was not the one expected",
        ["CONNECTRESET"] = "a connection to a relay was reset",
        ["TIMEOUT"] = "a connection to a relay timed out",
        ["NOROUTE"] = "no route to the relays (is the network up?)",
        ["IOERROR"] = "a connection to a relay failed to read or write",
        ["RESOURCELIMIT"] = "out of sockets or memory",
        ["PT_MISSING"] = "a pluggable transport is missing",
        ["MISC"] = "a connection to a relay failed",
    };

    public static BootstrapStatus From(TorSeverity severity, IReadOnlyDictionary<string, string> args) => new(
        args.TryGetValue("PROGRESS", out var p) && int.TryParse(p, out var n) ? n : 0,
        args.GetValueOrDefault("TAG", ""),
        args.GetValueOrDefault("SUMMARY", ""),
        severity,
        args.GetValueOrDefault("WARNING"),
        args.GetValueOrDefault("REASON"));

    /// <summary>Parses "NOTICE BOOTSTRAP PROGRESS=..." as GETINFO status/bootstrap-phase returns it.</summary>
    public static BootstrapStatus ParsePhase(string text)
    {
        var (words, pairs) = ControlGrammar.ParseArguments(text);
        return From(words.Count > 0 ? TorEvent.ParseSeverity(words[0]) : TorSeverity.Notice, pairs);
    }
}

/// <summary>
/// HS_DESC (control-spec §4.1.25 "HiddenService descriptors"):
/// <c>"650" SP "HS_DESC" SP Action SP HSAddress SP AuthType SP HsDir [SP DescriptorID] [SP "REASON=" Reason]
/// [SP "REPLICA=" Replica] [SP "HSDIR_INDEX=" HSDirIndex]</c>. Action is REQUESTED, UPLOAD, RECEIVED,
/// UPLOADED, IGNORE, FAILED or CREATED. For our own service, UPLOAD, UPLOADED and FAILED tell
/// <see cref="DescriptorPublication"/> when it is published.
/// </summary>
public sealed record HsDescEvent(string Action, string Address, string AuthType, string HsDir, string? DescriptorId, string? Reason)
    : TorEvent("HS_DESC")
{
    internal static HsDescEvent ParseBody(string body)
    {
        var (words, pairs) = ControlGrammar.ParseArguments(body);
        if (words.Count < 4) throw new TorControlProtocolException($"malformed HS_DESC event: {body}");
        return new HsDescEvent(words[0], words[1], words[2], words[3], words.Count > 4 ? words[4] : null, pairs.GetValueOrDefault("REASON"));
    }
}

/// <summary>A log message event: DEBUG, INFO, NOTICE, WARN or ERR (control-spec §4.1.5).</summary>
public sealed record LogEvent(TorSeverity Severity, string Message) : TorEvent(Severity.ToString().ToUpperInvariant());

/// <summary>An event we asked for but do not model; kept whole so nothing is lost.</summary>
public sealed record UnrecognizedEvent(string Keyword, string Text) : TorEvent(Keyword);
