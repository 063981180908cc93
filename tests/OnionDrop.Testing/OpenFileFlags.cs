namespace OnionDrop.Testing;

/// <summary>How this process has a file open, from /proc/self/fdinfo.</summary>
public static class OpenFileFlags
{
    private const int ODirect = 0x4000; // octal 040000 in fdinfo's flags

    public static bool IsDirect(nint fd)
    {
        var flags = File.ReadLines($"/proc/self/fdinfo/{fd}").First(l => l.StartsWith("flags:"));
        return (Convert.ToInt32(flags["flags:".Length..].Trim(), 8) & ODirect) != 0;
    }
}
