using System.Globalization;

namespace OnionDrop.Files;

/// <summary>
/// "3.0 MiB": sizes as people read them, in the command line's lines, status and the operator's log (all in English,
/// so with a point whatever the locale).
/// </summary>
public static class ByteSize
{
    public static string Format(long bytes)
    {
        if (bytes < 1024) return $"{bytes} B";
        var (unit, scale) = bytes switch
        {
            < 1L << 20 => ("KiB", 1L << 10),
            < 1L << 30 => ("MiB", 1L << 20),
            < 1L << 40 => ("GiB", 1L << 30),
            _ => ("TiB", 1L << 40),
        };
        return (bytes / (double)scale).ToString("0.0", CultureInfo.InvariantCulture) + " " + unit;
    }
}
