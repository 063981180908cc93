using System.Diagnostics;

namespace OnionDrop.Testing;

/// <summary>
/// Runs a program as a journalist at a terminal does: its stdin, stdout and stderr on a pseudo-terminal made by
/// util-linux `script` (bsdutils, on every Debian), so Console.IsErrorRedirected is false and progress lines show.
/// Pipes, as <see cref="ChildProcess"/> uses, never exercise that path: `fetch` crashed at every terminal unseen.
/// The result's Stdout is what the terminal showed, stdout and stderr together, lines ending "\r\n"; Stderr holds
/// only `script`'s own complaints. The exit code is the program's (`script -e`).
/// </summary>
public static class PseudoTerminal
{
    public static ProcessStartInfo StartInfo(string file, IEnumerable<string> args) =>
        ChildProcess.StartInfo("script", ["-q", "-e", "-c", string.Join(' ', new[] { file }.Concat(args).Select(ShellQuote)), "/dev/null"]);

    /// <summary>Runs to completion (killed after <paramref name="timeout"/>); stdin is at its end at once, like `&lt;/dev/null`.</summary>
    public static Task<ProcessResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null) =>
        ChildProcess.RunAsync(StartInfo(file, args), timeout ?? TimeSpan.FromMinutes(2));

    /// <summary>The built `oniondrop` at a terminal.</summary>
    public static Task<ProcessResult> RunOniondropAsync(string[] args, TimeSpan? timeout = null) =>
        RunAsync("dotnet", [Oniondrop.Dll, .. args], timeout);

    /// <summary>One word for /bin/sh, whatever it holds: 'it'\''s'.</summary>
    public static string ShellQuote(string word) => "'" + word.Replace("'", @"'\''") + "'";
}
