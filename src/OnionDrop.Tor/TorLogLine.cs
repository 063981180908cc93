using Microsoft.Extensions.Logging;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>
/// One line of tor's log as "Log notice stdout" writes it: "Nov 23 13:00:28.000 [notice] message".
/// </summary>
public sealed record TorLogLine(TorSeverity Severity, string Message)
{
    public static TorLogLine Parse(string line)
    {
        var open = line.IndexOf(" [", StringComparison.Ordinal);
        var close = open < 0 ? -1 : line.IndexOf("] ", open, StringComparison.Ordinal);
        if (open < 0 || close < 0) return new TorLogLine(TorSeverity.Notice, line);
        var severity = TorEvent.ParseSeverity(line[(open + 2)..close]);
        return new TorLogLine(severity, line[(close + 2)..]);
    }

    public LogLevel LogLevel => Severity switch
    {
        TorSeverity.Debug => LogLevel.Debug,
        TorSeverity.Info => LogLevel.Debug,
        TorSeverity.Notice => LogLevel.Information,
        TorSeverity.Warn => LogLevel.Warning,
        _ => LogLevel.Error,
    };
}
