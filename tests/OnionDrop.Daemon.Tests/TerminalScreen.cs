using System.Diagnostics;
using OnionDrop.Testing;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// A program at a real terminal, as a person uses it: tmux, detached, is the terminal. The test types on its keyboard
/// (send-keys) and reads its screen as shown (capture-pane: text, escape sequences already applied), so it waits for
/// what a person would wait for, never for a fixed time. The tmux server is private to this screen (its own socket)
/// and ends, with the program, on dispose.
/// </summary>
public sealed class TerminalScreen : IAsyncDisposable
{
    private static readonly TimeSpan DefaultWait = TimeSpan.FromSeconds(15);

    private readonly TempDirectory _directory;
    private readonly Dictionary<string, string> _environment;

    private string Socket => _directory.Combine("tmux.sock");

    /// <summary>A private scratch folder, the program's HOME too (so no dot-file of the runner's is read or written).</summary>
    public TempDirectory Directory => _directory;

    private TerminalScreen(TempDirectory directory, Dictionary<string, string> environment) =>
        (_directory, _environment) = (directory, environment);

    public static async Task<TerminalScreen> StartAsync(string[] command, int columns = 80, int rows = 24)
    {
        var directory = new TempDirectory("oniondrop-terminal-");
        var screen = new TerminalScreen(directory, new Dictionary<string, string> { ["HOME"] = directory.Path, ["LANG"] = "C.UTF-8" });
        try
        {
            await screen.TmuxAsync(["new-session", "-d", "-x", columns.ToString(), "-y", rows.ToString(), "--", .. command]);
        }
        catch
        {
            directory.Dispose();
            throw;
        }
        return screen;
    }

    /// <summary>The screen's lines as shown, trailing spaces cut.</summary>
    public async Task<string[]> LinesAsync() =>
        (await TmuxAsync(["capture-pane", "-p"])).TrimEnd('\n').Split('\n').Select(l => l.TrimEnd()).ToArray();

    /// <summary>The cursor's line on the screen, from 0.</summary>
    public async Task<int> CursorLineAsync() => int.Parse((await TmuxAsync(["display-message", "-p", "#{cursor_y}"])).Trim());

    /// <summary>
    /// Waits until <paramref name="program"/> runs under the terminal's program (as an editor w3m starts): typing then
    /// reaches it. tmux's own pane_current_command cannot say: a child started by system() stays in w3m's process group.
    /// </summary>
    public async Task WaitForProgramAsync(string program)
    {
        var top = int.Parse((await TmuxAsync(["display-message", "-p", "#{pane_pid}"])).Trim());
        var deadline = Stopwatch.StartNew();
        while (!Descendants(top).Contains(program))
        {
            if (deadline.Elapsed > DefaultWait) throw new TimeoutException($"{program} never ran at the terminal");
            await Task.Delay(20);
        }
    }

    /// <summary>The names (comm) of every process under <paramref name="top"/>, from /proc.</summary>
    private static HashSet<string> Descendants(int top)
    {
        var processes = new List<(int Pid, int Parent, string Name)>();
        foreach (var dir in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid)) continue;
            string stat;
            try { stat = File.ReadAllText(Path.Combine(dir, "stat")); } catch (IOException) { continue; }   // gone meanwhile
            // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so it ends at the last ')'.
            var close = stat.LastIndexOf(')');
            processes.Add((pid, int.Parse(stat[(close + 2)..].Split(' ')[1]), stat[(stat.IndexOf('(') + 1)..close]));
        }
        var under = new HashSet<int> { top };
        for (var grew = true; grew;)
        {
            grew = false;
            foreach (var p in processes)
                if (under.Contains(p.Parent) && under.Add(p.Pid)) grew = true;
        }
        return processes.Where(p => p.Pid != top && under.Contains(p.Pid)).Select(p => p.Name).ToHashSet();
    }

    /// <summary>Keys by tmux's names: "Tab", "Enter", "C-d".</summary>
    public Task KeysAsync(params string[] keys) => TmuxAsync(["send-keys", .. keys]);

    /// <summary>Text typed as it is, character by character.</summary>
    public Task TypeAsync(string text) => TmuxAsync(["send-keys", "-l", text]);

    /// <summary>Waits until the screen (its lines and the cursor's line) shows what <paramref name="shown"/> looks for.</summary>
    public async Task<string[]> WaitForAsync(string what, Func<string[], int, bool> shown, TimeSpan? timeout = null)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var lines = await LinesAsync();
            if (shown(lines, await CursorLineAsync())) return lines;
            if (deadline.Elapsed > (timeout ?? DefaultWait))
                throw new TimeoutException($"the terminal never showed {what}; it shows:\n{string.Join('\n', lines)}");
            await Task.Delay(50);
        }
    }

    public Task<string[]> WaitForTextAsync(string text, TimeSpan? timeout = null) =>
        WaitForAsync($"\"{text}\"", (lines, _) => Flatten(lines).Contains(text, StringComparison.Ordinal), timeout);

    /// <summary>
    /// Presses Tab (the next link or form field) until the cursor is where <paramref name="there"/> says, a few
    /// presses at most: each press is seen to move the cursor before the next.
    /// </summary>
    public async Task TabToAsync(string what, Func<string[], int, bool> there)
    {
        for (var press = 0; press < 10; press++)
        {
            var lines = await LinesAsync();
            var cursor = await CursorLineAsync();
            if (there(lines, cursor)) return;
            var before = await TmuxAsync(["display-message", "-p", "#{cursor_x},#{cursor_y}"]);
            await KeysAsync("Tab");
            await WaitForPositionChangeAsync(before);
        }
        throw new AssertionException($"Tab never reached {what}; the screen:\n{string.Join('\n', await LinesAsync())}");
    }

    private async Task WaitForPositionChangeAsync(string before)
    {
        var deadline = Stopwatch.StartNew();
        while (await TmuxAsync(["display-message", "-p", "#{cursor_x},#{cursor_y}"]) == before)
        {
            if (deadline.Elapsed > DefaultWait) throw new TimeoutException("Tab did not move the cursor");
            await Task.Delay(20);
        }
    }

    /// <summary>The screen's text as one line, each run of white space (line ends, no-break spaces) one space.</summary>
    public static string Flatten(IEnumerable<string> lines) =>
        System.Text.RegularExpressions.Regex.Replace(string.Join(' ', lines), @"\s+", " ").Trim();

    private async Task<string> TmuxAsync(string[] args)
    {
        var psi = ChildProcess.StartInfo("tmux", ["-S", Socket, "-f", "/dev/null", .. args]);
        foreach (var (name, value) in _environment) psi.Environment[name] = value;
        psi.Environment.Remove("TMUX");   // a runner inside tmux: this server is another, not a nested session of that one
        var result = await ChildProcess.RunAsync(psi, TimeSpan.FromSeconds(10));
        if (result.ExitCode != 0) throw new InvalidOperationException($"tmux {string.Join(' ', args)}: {result}");
        return result.Stdout;
    }

    public async ValueTask DisposeAsync()
    {
        try { await TmuxAsync(["kill-server"]); } catch (InvalidOperationException) { /* already gone with its program */ }
        _directory.Dispose();
    }
}
