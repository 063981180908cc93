using System.Text;
using OnionDrop.Sealing;

namespace OnionDrop.Cli;

/// <summary>Text from elsewhere (a server, a submission) on the journalist's terminal: shown, never obeyed.</summary>
internal static class TerminalText
{
    /// <summary>Longest piece of relayed text shown as one line; a longer one is cut into several.</summary>
    private const int MaxLine = 1024;

    /// <summary>
    /// Control and invisible format characters become '?': escape sequences could retitle the window, write the
    /// clipboard (OSC 52), clear the screen or forge a line; bidi overrides could reorder what is shown.
    /// </summary>
    public static string Printable(string text) => string.Concat(text.Select(c =>
        char.IsControl(c) || SafeFileName.IsInvisible(char.GetUnicodeCategory(c)) ? '?' : c));

    /// <summary>
    /// Copies <paramref name="from"/> (the transport's stderr: ssh passes the remote command's on, byte for byte)
    /// to <paramref name="show"/> line by line, each printable and at most <see cref="MaxLine"/> characters, so a
    /// line that never ends costs no more memory than that.
    /// </summary>
    public static async Task RelayAsync(TextReader from, Action<string> show)
    {
        var buffer = new char[4096];
        var line = new StringBuilder();
        int read;
        while ((read = await from.ReadAsync(buffer)) > 0)
            foreach (var c in buffer.AsSpan(0, read))
            {
                if (c == '\n' || line.Length == MaxLine)
                {
                    show(Printable(line.ToString().TrimEnd('\r')));
                    line.Clear();
                    if (c == '\n') continue;
                }
                line.Append(c);
            }
        if (line.Length > 0) show(Printable(line.ToString().TrimEnd('\r')));
    }
}
