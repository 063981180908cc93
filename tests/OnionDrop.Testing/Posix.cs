using System.Runtime.InteropServices;

namespace OnionDrop.Testing;

/// <summary>Signals and process relations that System.Diagnostics.Process does not expose.</summary>
public static class PosixProcess
{
    public const int SIGINT = 2, SIGKILL = 9, SIGTERM = 15, SIGCONT = 18, SIGSTOP = 19;

    /// <summary>kill(2); false if the process is already gone.</summary>
    public static bool Signal(int pid, int signal) => kill(pid, signal) == 0;

    public static bool IsAlive(int pid) => kill(pid, 0) == 0 && !IsZombie(pid);

    /// <summary>Direct children of <paramref name="pid"/> (from /proc/PID/task/*/children).</summary>
    public static IReadOnlyList<int> Children(int pid)
    {
        var children = new List<int>();
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                try
                {
                    foreach (var word in File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                        children.Add(int.Parse(word));
                }
                catch (IOException) { }
            }
        }
        catch (IOException) { }
        return children;
    }

    /// <summary>The executable's name (comm) of <paramref name="pid"/>, or null if gone.</summary>
    public static string? Name(int pid)
    {
        try { return File.ReadAllText($"/proc/{pid}/comm").Trim(); } catch (IOException) { return null; }
    }

    /// <summary>The real user id <paramref name="pid"/> runs as (the first of /proc/PID/status's Uid line).</summary>
    public static int Uid(int pid) =>
        int.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1]);

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException) { return true; }
    }

    [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);
}

/// <summary>What /proc says about a process: resident memory, descriptors, threads.</summary>
public sealed record ProcessFootprint(long RssKiB, long PeakRssKiB, int FileDescriptors, int Threads)
{
    public static ProcessFootprint Of(int pid)
    {
        long rss = 0, hwm = 0;
        var threads = 0;
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:")) rss = KiB(line);
            else if (line.StartsWith("VmHWM:")) hwm = KiB(line);
            else if (line.StartsWith("Threads:")) threads = int.Parse(line["Threads:".Length..].Trim());
        }
        var fds = Directory.GetFileSystemEntries($"/proc/{pid}/fd").Length;
        return new ProcessFootprint(rss, hwm, fds, threads);
    }

    private static long KiB(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
}
