using OnionDrop.Sealing;

namespace OnionDrop.Cli.Commands;

/// <summary>The secret key file of `open --key` and `fetch --open --key`, loaded and its problems said alike.</summary>
internal static class SecretKeyFile
{
    /// <summary>Loads the key, asking its passphrase (file, environment, else terminal) only if it is protected.</summary>
    /// <returns>the key, or null once one line on stderr, after "oniondrop COMMAND: ", has said why not</returns>
    public static JournalistKey? Load(string command, string path, string? passphraseFile)
    {
        // Said once the file proves to hold a secret key (before its passphrase is asked): a public key given by
        // mistake, 0644 as it may be, was warned about as a secret one before being named for what it is.
        var loose = KeyFilePermissions.Warning(path);
        void Warn()
        {
            if (loose is not null) Console.Error.WriteLine($"oniondrop {command}: {loose}");
            loose = null;
        }
        try
        {
            var fromScript = Passphrases.FromFileOrEnvironment(passphraseFile);
            var key = JournalistKey.Load(path, () => { Warn(); return fromScript ?? Passphrases.Ask($"Passphrase for {path}: "); });
            Warn();
            return key;
        }
        catch (FormatException e) when (e.InnerException is FileNotFoundException or DirectoryNotFoundException)
        {
            // Not .NET's "Could not find file '...'.", which a journalist may not take for a typo in the name.
            Console.Error.WriteLine($"oniondrop {command}: key file {path}: no such file");
        }
        catch (Exception e) when (e is FormatException or PassphraseException or IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"oniondrop {command}: {path}: {e.Message}");
        }
        return null;
    }
}
