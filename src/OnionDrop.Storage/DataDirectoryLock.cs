namespace OnionDrop.Storage;

/// <summary>The store is already open in another process (the running daemon, or a pull serving directly).</summary>
public sealed class StoreLockedException(string dataDir)
    : IOException($"{dataDir} is in use by another oniondrop process (it holds daemon.lock)");

/// <summary>
/// DATA/daemon.lock, held with flock(LOCK_EX) for as long as one process owns the catalog. Only the holder
/// opens catalog.db, so LiteDB never has to share its file between processes or users.
/// </summary>
/// <remarks>
/// A process that waits for it (the daemon starting) holds DATA/daemon.starting meanwhile, with flock too, so that it
/// goes with the waiter however that ends: a pull served directly while the daemon was stopped watches for it
/// (<see cref="IsWanted"/>) and hands the store over, so the drop box is never kept down by a journalist's pull.
/// </remarks>
public sealed class DataDirectoryLock : IDisposable
{
    public const string FileName = "daemon.lock";
    public const string WantedFileName = "daemon.starting";

    private readonly FileStream _file;

    private DataDirectoryLock(FileStream file) => _file = file;

    /// <summary>
    /// Takes the lock, polling up to <paramref name="wait"/> (and saying so with daemon.starting while it waits); null
    /// if another process still holds it.
    /// </summary>
    public static DataDirectoryLock? TryAcquire(string dataDir, TimeSpan wait = default)
    {
        var path = Path.Combine(dataDir, FileName);
        var deadline = DateTime.UtcNow + wait;
        DataDirectoryLock? wanting = null;
        try
        {
            while (true)
            {
                var held = TryOpen(path);
                if (held is not null) return held;
                if (DateTime.UtcNow >= deadline) return null;
                // Tried again each round: a pull looking (IsWanted) holds it shared for a moment.
                wanting ??= TryOpen(Path.Combine(dataDir, WantedFileName));
                Thread.Sleep(100);
            }
        }
        finally { wanting?.Dispose(); }
    }

    /// <summary>True when another process waits for the lock (the daemon starting): its holder should let go.</summary>
    public static bool IsWanted(string dataDir)
    {
        Microsoft.Win32.SafeHandles.SafeFileHandle file;
        // Only a waiter makes the file: none there, nobody waits.
        try { file = Posix.OpenNoFollow(Path.Combine(dataDir, WantedFileName), create: false, readOnly: true); }
        catch (FileNotFoundException) { return false; }
        using (file) return !Posix.TryLockShared(file);
    }

    /// <summary>True when some process holds the lock right now (the daemon is running).</summary>
    public static bool IsHeld(string dataDir)
    {
        if (!File.Exists(Path.Combine(dataDir, FileName))) return false;
        using var probe = TryAcquire(dataDir);
        return probe is null;
    }

    private static DataDirectoryLock? TryOpen(string path)
    {
        // Never through a link: root runs `compact` and `status` over a directory the daemon's user owns, which
        // could otherwise make root create or open any file it names.
        var handle = Posix.OpenNoFollow(path, create: true);
        var file = new FileStream(handle, FileAccess.ReadWrite, 0);
        if (!Posix.TryLockExclusive(file.SafeFileHandle)) { file.Dispose(); return null; }
        return new DataDirectoryLock(file);
    }

    public void Dispose() => _file.Dispose(); // closing the descriptor releases the flock
}
