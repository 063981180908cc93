using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>
/// One line of tor's log as "Log notice stdout" writes it: "Nov 23 13:00:28.000 [notice] message".
/// Circuit and stream numbers are removed from the message, which goes to the operator's journal and status.json:
/// SafeLogging hides addresses, not these, and a warning about a rendezvous circuit is one line about a source's
/// activity ("Maximum streams per circuit limit reached on rendezvous circuit 2653832962").
/// </summary>
public sealed partial record TorLogLine(TorSeverity Severity, string Message)
{
    public static TorLogLine Parse(string line)
    {
        var open = line.IndexOf(" [", StringComparison.Ordinal);
        var close = open < 0 ? -1 : line.IndexOf("] ", open, StringComparison.Ordinal);
        if (open < 0 || close < 0) return new TorLogLine(TorSeverity.Notice, WithoutCircuitIds(line));
        var severity = TorEvent.ParseSeverity(line[(open + 2)..close]);
        return new TorLogLine(severity, WithoutCircuitIds(line[(close + 2)..]));
    }

    private static string WithoutCircuitIds(string message) => CircuitId().Replace(message, "$1[id]");

    /// <summary>"circuit 123", "circ 123", "circ_id=123", "stream 45", "stream id 45", "global circuit ID 9".</summary>
    [GeneratedRegex(@"(?i)\b((?:circuit|circ|stream)(?:[ _]id)?(?:\s*[=:]\s*|\s+))\d+")]
    private static partial Regex CircuitId();

    public LogLevel LogLevel => Severity switch
    {
        TorSeverity.Debug => LogLevel.Debug,
        TorSeverity.Info => LogLevel.Debug,
        TorSeverity.Notice => LogLevel.Information,
        TorSeverity.Warn => LogLevel.Warning,
        _ => LogLevel.Error,
    };
}
