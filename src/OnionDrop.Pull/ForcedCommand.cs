namespace OnionDrop.Pull;

/// <summary>
/// What an SSH key restricted to `command="oniondrop pull --stdio ..."` may ask for. sshd runs the forced
/// command whatever the client asked, and passes the client's request in SSH_ORIGINAL_COMMAND: accepted are
/// nothing (a plain `ssh host`) and exactly what `oniondrop fetch` sends; a shell, scp, sftp or anything else
/// is refused.
/// </summary>
public static class ForcedCommand
{
    public const string Variable = "SSH_ORIGINAL_COMMAND";

    /// <summary>Null when allowed; otherwise the one-line refusal for stderr.</summary>
    public static string? Refusal(string? originalCommand)
    {
        if (originalCommand is null) return null;
        var asked = string.Join(' ', originalCommand.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries));
        if (asked.Length == 0 || asked == PullProtocol.RemoteCommand) return null;
        return $"this key may only pull sealed submissions (`{PullProtocol.RemoteCommand}`); refused: {PullProtocol.Printable(asked, 60)}";
    }
}
