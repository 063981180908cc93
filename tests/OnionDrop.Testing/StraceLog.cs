using System.Text.RegularExpressions;

namespace OnionDrop.Testing;

/// <summary>
/// One system call from `strace -f` output. <see cref="Start"/> and <see cref="End"/> are the line numbers at
/// which strace saw it enter and return (the same line unless another thread's call came in between), so
/// "a ended before b started" (<c>a.End &lt; b.Start</c>) is the order the kernel saw. <see cref="Path"/> is the
/// file its descriptor argument named at that moment (tracked through openat/close), if any.
/// </summary>
public sealed record Syscall(int Start, int End, int Pid, string Name, string Args, long Result, string? Path)
{
    public bool EndedBefore(Syscall other) => End < other.Start;
}

/// <summary>Parses `strace -f [-tt] -o FILE` output into <see cref="Syscall"/>s with their descriptors resolved.</summary>
public static class StraceLog
{
    // "1234 13:11:18.990611 fsync(204) = 0", "1234 ... pwrite64(204, "..."..., 5504, 0 <unfinished ...>", "1234 ... <... pwrite64 resumed>) = 5504"
    private static readonly Regex Whole = new(@"^(\d+)\s+(?:[\d:.]+\s+)?(\w+)\((.*)\)\s+=\s+(-?\d+|\?)", RegexOptions.Compiled | RegexOptions.Singleline);
    private static readonly Regex Unfinished = new(@"^(\d+)\s+(?:[\d:.]+\s+)?(\w+)\((.*?)\s*<unfinished \.\.\.>$", RegexOptions.Compiled | RegexOptions.Singleline);
    private static readonly Regex Resumed = new(@"^(\d+)\s+(?:[\d:.]+\s+)?<\.\.\. (\w+) resumed>(.*)\)\s+=\s+(-?\d+|\?)", RegexOptions.Compiled | RegexOptions.Singleline);
    private static readonly Regex OpenPath = new(@"^(?:AT_FDCWD|-?\d+),\s+""((?:[^""\\]|\\.)*)""", RegexOptions.Compiled);

    public static IReadOnlyList<Syscall> Parse(IEnumerable<string> lines)
    {
        var pending = new Dictionary<int, (int Start, string Name, string Args)>();
        var done = new List<(int Start, int End, int Pid, string Name, string Args, long Result)>();
        var n = 0;
        foreach (var line in lines)
        {
            n++;
            Match m;
            if ((m = Unfinished.Match(line)).Success)
                pending[int.Parse(m.Groups[1].Value)] = (n, m.Groups[2].Value, m.Groups[3].Value);
            else if ((m = Resumed.Match(line)).Success)
            {
                var pid = int.Parse(m.Groups[1].Value);
                if (pending.Remove(pid, out var p))
                    done.Add((p.Start, n, pid, p.Name, p.Args + m.Groups[3].Value, Result(m.Groups[4].Value)));
            }
            else if ((m = Whole.Match(line)).Success)
                done.Add((n, n, int.Parse(m.Groups[1].Value), m.Groups[2].Value, m.Groups[3].Value, Result(m.Groups[4].Value)));
        }

        // Replay opens and closes in the order they returned, resolving each call's descriptor when it entered.
        // (Threads share one descriptor table; strace -f traces one process's threads here.)
        var changes = done.Where(c => c.Name is "openat" or "open" or "close" or "creat").OrderBy(c => c.End).ToList();
        var fds = new Dictionary<int, string>();
        var result = new List<Syscall>();
        var next = 0;
        foreach (var c in done.OrderBy(c => c.Start))
        {
            while (next < changes.Count && changes[next].End < c.Start)
            {
                var change = changes[next++];
                if (change.Name == "close") fds.Remove(FirstInt(change.Args));
                else if (change.Result >= 0 && OpenPath.Match(change.Args) is { Success: true } open) fds[(int)change.Result] = open.Groups[1].Value;
            }
            var path = c.Name is "openat" or "open" or "rename" or "renameat" or "renameat2" ? null : fds.GetValueOrDefault(FirstInt(c.Args));
            result.Add(new Syscall(c.Start, c.End, c.Pid, c.Name, c.Args, c.Result, path));
        }
        return result;
    }

    /// <summary>The quoted path arguments of a call (openat's file; rename's old and new names).</summary>
    public static IReadOnlyList<string> Paths(Syscall call) =>
        Regex.Matches(call.Args, @"""((?:[^""\\]|\\.)*)""").Select(m => m.Groups[1].Value).ToList();

    /// <summary>The bytes of a call's first quoted data argument (as far as strace printed it: see -s).</summary>
    public static byte[] Data(Syscall call)
    {
        var start = call.Args.IndexOf('"');
        var bytes = new List<byte>();
        if (start < 0) return [];
        for (var i = start + 1; i < call.Args.Length; i++)
        {
            var c = call.Args[i];
            if (c == '"') break;
            if (c != '\\') { bytes.AddRange(System.Text.Encoding.UTF8.GetBytes(c.ToString())); continue; }
            var e = call.Args[++i];
            if (e is >= '0' and <= '7')
            {
                var value = 0;
                for (var k = 0; k < 3 && i < call.Args.Length && call.Args[i] is >= '0' and <= '7'; k++, i++) value = value * 8 + (call.Args[i] - '0');
                i--;
                bytes.Add((byte)value);
            }
            else if (e == 'x') { bytes.Add(Convert.ToByte(call.Args.Substring(i + 1, 2), 16)); i += 2; }
            else bytes.Add(e switch { 'n' => 10, 't' => 9, 'r' => 13, 'v' => 11, 'f' => 12, 'a' => 7, 'b' => 8, _ => (byte)e });
        }
        return bytes.ToArray();
    }

    private static long Result(string s) => s == "?" ? long.MinValue : long.Parse(s);

    private static int FirstInt(string args) => int.TryParse(args.Split(',', 2)[0].Trim(), out var fd) ? fd : -1;
}
