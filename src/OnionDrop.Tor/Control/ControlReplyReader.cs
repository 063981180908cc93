using System.Buffers;
using System.IO.Pipelines;
using System.Text;

namespace OnionDrop.Tor.Control;

/// <summary>
/// Reads replies from tor's side of a control connection (control-spec §2.3):
/// <code>
/// Reply         = *(MidReplyLine / DataReplyLine) EndReplyLine
/// MidReplyLine  = StatusCode "-" ReplyLine
/// DataReplyLine = StatusCode "+" ReplyLine CmdData
/// EndReplyLine  = StatusCode SP ReplyLine
/// </code>
/// CmdData (§2.2) is a run of lines ended by a line holding a single "."; a data line that begins with
/// "." has one more "." in front of it (dot-stuffing), which the reader removes. Tor sends CRLF; a bare
/// LF is accepted too.
/// </summary>
public sealed class ControlReplyReader(PipeReader input)
{
    /// <summary>Longest line we accept: tor's own lines are far shorter; this bounds memory on a bad peer.</summary>
    public const int MaxLineBytes = 1 << 20;

    /// <returns>The next reply, or null when the connection ended cleanly between replies.</returns>
    /// <exception cref="TorControlProtocolException">Malformed line, or the connection ended mid-reply.</exception>
    public async ValueTask<ControlReply?> ReadAsync(CancellationToken cancellationToken = default)
    {
        var lines = new List<ReplyLine>();
        while (true)
        {
            var line = await ReadLineAsync(cancellationToken);
            if (line is null)
            {
                if (lines.Count == 0) return null;
                throw new TorControlProtocolException("connection closed in the middle of a reply");
            }
            if (line.Length < 4 || !char.IsAsciiDigit(line[0]) || !char.IsAsciiDigit(line[1]) || !char.IsAsciiDigit(line[2])
                || line[3] is not (' ' or '-' or '+'))
                throw new TorControlProtocolException($"malformed reply line: {Truncate(line)}");

            var status = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
            var separator = line[3];
            var text = line[4..];
            string? data = null;
            if (separator == '+') data = await ReadDataAsync(cancellationToken);
            lines.Add(new ReplyLine(status, separator, text, data));
            if (separator == ' ') return new ControlReply(lines);
        }
    }

    private async ValueTask<string> ReadDataAsync(CancellationToken cancellationToken)
    {
        var data = new StringBuilder();
        var first = true;
        while (true)
        {
            var line = await ReadLineAsync(cancellationToken)
                       ?? throw new TorControlProtocolException("connection closed inside a data reply");
            if (line == ".") return data.ToString();
            if (line.StartsWith('.')) line = line[1..];
            if (!first) data.Append('\n');
            data.Append(line);
            first = false;
        }
    }

    private async ValueTask<string?> ReadLineAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            var newline = buffer.PositionOf((byte)'\n');
            if (newline is { } end)
            {
                var lineBytes = buffer.Slice(0, end);
                var line = Encoding.UTF8.GetString(lineBytes);
                if (line.EndsWith('\r')) line = line[..^1];
                input.AdvanceTo(buffer.GetPosition(1, end));
                return line;
            }
            if (buffer.Length > MaxLineBytes) throw new TorControlProtocolException("reply line too long");
            if (result.IsCompleted || result.IsCanceled)
            {
                input.AdvanceTo(buffer.End);
                if (buffer.Length == 0) return null;
                throw new TorControlProtocolException("connection closed in the middle of a line");
            }
            input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    private static string Truncate(string s) => s.Length <= 80 ? s : s[..80] + "...";
}

/// <summary>Tor's side of the control connection broke the protocol or went away mid-reply.</summary>
public sealed class TorControlProtocolException(string message) : Exception(message);
