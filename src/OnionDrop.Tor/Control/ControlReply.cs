namespace OnionDrop.Tor.Control;

/// <summary>
/// One line of a reply (control-spec §2.3 "Replies from Tor to the controller"):
/// <c>StatusCode ("-" / "+" / SP) ReplyText</c>. A "+" line carries a data block (<see cref="Data"/>),
/// already dot-unstuffed and with CRLF turned into "\n".
/// </summary>
public sealed record ReplyLine(int Status, char Separator, string Text, string? Data = null);

/// <summary>
/// A whole reply or asynchronous event: any number of "-"/"+" lines ended by one line with a space
/// separator (control-spec §2.3). Status codes are described in control-spec §4 ("Replies"): 2yz success,
/// 4yz/5yz failure, 6yz asynchronous event.
/// </summary>
public sealed record ControlReply(IReadOnlyList<ReplyLine> Lines)
{
    /// <summary>The status of the final line; the spec keeps it the same on every line of a reply.</summary>
    public int Status => Lines[^1].Status;

    public bool IsSuccess => Status is >= 200 and < 300;

    public bool IsEvent => Status is >= 600 and < 700;

    /// <summary>The text of the last line (e.g. "OK", or tor's error message).</summary>
    public string Message => Lines[^1].Text;

    /// <summary>Throws <see cref="TorControlException"/> unless the reply is a 2yz success.</summary>
    public ControlReply EnsureSuccess(string command)
    {
        if (!IsSuccess) throw new TorControlException(command, Status, string.Join(" ", Lines.Select(l => l.Text)));
        return this;
    }

    public override string ToString() =>
        string.Join("\n", Lines.Select(l => $"{l.Status}{l.Separator}{l.Text}" + (l.Data is null ? "" : "\n" + l.Data + "\n.")));
}

/// <summary>A command tor refused: its status code and tor's own words.</summary>
public sealed class TorControlException(string command, int status, string message)
    : Exception($"tor refused {command}: {status} {message}")
{
    public string Command { get; } = command;
    public int Status { get; } = status;
    public string TorMessage { get; } = message;
}
