namespace OnionDrop.Storage;

/// <summary>The store is already open in another process (the running daemon, or a pull serving directly).</summary>
public sealed class StoreLockedException(string dataDir)
    : IOException($"{dataDir} is in use by another oniondrop process (it holds daemon.lock)");

/// <summary>
/// DATA/daemon.lock, held with flock(LOCK_EX) for as long as one process owns the catalog. Only the holder
/// opens catalog.db, so LiteDB never has to share its file between processes or users.
/// </summary>
public sealed class DataDirectoryLock : IDisposable
{
    public const string FileName = "daemon.lock";

    private readonly FileStream _file;

    private DataDirectoryLock(FileStream file) => _file = file;

    /// <summary>Takes the lock, polling up to <paramref name="wait"/>; null if another process still holds it.</summary>
    public static DataDirectoryLock? TryAcquire(string dataDir, TimeSpan wait = default)
    {
        var path = Path.Combine(dataDir, FileName);
        var deadline = DateTime.UtcNow + wait;
        while (true)
        {
            var held = TryOpen(path);
            if (held is not null) return held;
            if (DateTime.UtcNow >= deadline) return null;
            Thread.Sleep(100);
        }
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
