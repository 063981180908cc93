namespace OnionDrop.Cli.Commands;

/// <summary>
/// Says so when a secret key file can be read by others (group or world bits, checked on the file a link
/// leads to). A warning, not a refusal: a key on a FAT-formatted USB stick shows 0644 or 0755 whatever chmod
/// does, and refusing would push the key onto a disk instead; a protected key still needs its passphrase.
/// </summary>
internal static class KeyFilePermissions
{
    private const UnixFileMode Others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
                                        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <returns>one line for stderr, or null when only its owner can reach the file (or it cannot be read: loading says why)</returns>
    public static string? Warning(string path)
    {
        UnixFileMode mode;
        try { mode = File.GetUnixFileMode(path); }   // follows a link: the key's own modes
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        if ((mode & Others) == 0 || Directory.Exists(path)) return null; // a directory's modes are no key's: loading says what it is
        var link = new FileInfo(path).LinkTarget is { } target ? $" (a link to {target})" : "";
        return $"warning: {path}{link} can be read by others (mode {Convert.ToString((int)mode & 0x1FF, 8).PadLeft(4, '0')}): " +
               $"a secret key should be yours alone (chmod 600 {path})";
    }
}
