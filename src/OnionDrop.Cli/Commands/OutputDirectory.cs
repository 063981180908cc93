namespace OnionDrop.Cli.Commands;

/// <summary>The directory `open` and `fetch` write into, checked before any work starts.</summary>
internal static class OutputDirectory
{
    /// <summary>Why nothing could be written into <paramref name="directory"/> (made, 0700, if missing); null if it can.</summary>
    public static string? CannotWriteTo(string directory)
    {
        if (File.Exists(directory)) return "is a file, not a directory";
        try
        {
            Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            // A real file, created and gone: root-owned folders, read-only mounts and full inode tables all show here.
            var probe = Path.Combine(directory, $".oniondrop-probe-{Environment.ProcessId}");
            using (new FileStream(probe, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.DeleteOnClose)) { }
            return null;
        }
        catch (UnauthorizedAccessException) { return "permission denied: cannot write there"; }
        catch (IOException e) { return "cannot write there: " + e.Message; }
    }

    /// <summary>
    /// A warning when <paramref name="directory"/> keeps no Unix modes (FAT and exFAT, as USB sticks come): a file made
    /// 0600 there shows 0777, or whatever the mount says, so opened files can be read by every account. A warning, not
    /// a refusal, as for a key file there (<see cref="KeyFilePermissions"/>); null where modes are kept.
    /// </summary>
    public static string? KeepsNoModesWarning(string directory)
    {
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        UnixFileMode mode;
        try
        {
            var probe = Path.Combine(directory, $".oniondrop-probe-{Environment.ProcessId}");
            using (new FileStream(probe, new FileStreamOptions
                   { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = Private, Options = FileOptions.DeleteOnClose }))
                mode = File.GetUnixFileMode(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; } // writing there fails and says so
        return (mode & ~Private) == 0 ? null
            : $"warning: {directory} keeps no Unix permissions (as on FAT or exFAT, a USB stick's usual format): " +
              "what is opened there can be read by every account on this machine, and by anyone who gets the disk";
    }

    /// <summary>Removes <paramref name="directory"/> if nothing is in it: rmdir refuses one that is not empty.</summary>
    public static void RemoveIfEmpty(string directory)
    {
        try { Directory.Delete(directory, recursive: false); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { } // not empty after all: leave it
    }
}
