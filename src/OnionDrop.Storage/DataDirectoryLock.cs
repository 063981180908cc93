namespace OnionDrop.Storage;

/// <summary>The oniondrop process that holds daemon.lock, as it names itself there: so that one waiting for it can say what it waited for.</summary>
public enum StoreHolder
{
    /// <summary>One that names nothing (an older oniondrop), or no name could be read.</summary>
    Unknown,
    Daemon,
    /// <summary>A journalist's pull served directly, the daemon stopped.</summary>
    Pull,
    Compact,
    Recover,
}

/// <summary>The store is already open in another process (the running daemon, or a pull serving directly).</summary>
public sealed class StoreLockedException(string dataDir, StoreHolder holder = StoreHolder.Unknown)
    : IOException($"{dataDir} is in use by {DataDirectoryLock.Describe(holder)} (it holds daemon.lock)")
{
    public StoreHolder Holder { get; } = holder;
}

/// <summary>
/// DATA/daemon.lock, held with flock(LOCK_EX) for as long as one process owns the catalog. Only the holder
/// opens catalog.db, so LiteDB never has to share its file between processes or users.
/// </summary>
/// <remarks>
/// A process that waits for it (the daemon starting) holds DATA/daemon.starting meanwhile, with flock too, so that it
/// goes with the waiter however that ends: a pull served directly while the daemon was stopped watches for it
/// (<see cref="IsWanted"/>) and hands the store over, so the drop box is never kept down by a journalist's pull.
/// The holder writes its name in daemon.lock (<see cref="StoreHolder"/>, one word) and empties it when it lets go; the
/// waiter reads it while it waits (<see cref="WaitedFor"/>). Only a name: nothing decides by it.
/// </remarks>
public sealed class DataDirectoryLock : IDisposable
{
    public const string FileName = "daemon.lock";
    public const string WantedFileName = "daemon.starting";

    private readonly FileStream _file;
    private bool _named;

    private DataDirectoryLock(FileStream file) => _file = file;

    /// <summary>What held the lock when <see cref="TryAcquire"/> had to wait for it, and how long it waited; null if it did not.</summary>
    public (StoreHolder Holder, TimeSpan Time)? WaitedFor { get; private set; }

    /// <summary>
    /// Takes the lock, polling up to <paramref name="wait"/> (and saying so with daemon.starting while it waits), and
    /// names <paramref name="holder"/> in it; null if another process still holds it.
    /// </summary>
    public static DataDirectoryLock? TryAcquire(string dataDir, TimeSpan wait = default, StoreHolder holder = StoreHolder.Unknown)
    {
        var path = Path.Combine(dataDir, FileName);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        DataDirectoryLock? wanting = null;
        StoreHolder? waitedFor = null;
        try
        {
            while (true)
            {
                var held = TryOpen(path);
                if (held is not null)
                {
                    if (waitedFor is { } other) held.WaitedFor = (other, clock.Elapsed);
                    held.Name(holder);
                    return held;
                }
                // Read each round: the holder names itself just after it takes the lock, and the last one seen is the one let go.
                if (HeldBy(dataDir) is var name && (name != StoreHolder.Unknown || waitedFor is null)) waitedFor = name;
                if (clock.Elapsed >= wait) return null;
                // Tried again each round: a pull looking (IsWanted) holds it shared for a moment.
                wanting ??= TryOpen(Path.Combine(dataDir, WantedFileName));
                Thread.Sleep(100);
            }
        }
        finally { wanting?.Dispose(); }
    }

    /// <summary>What holds the lock, as it named itself in daemon.lock; <see cref="StoreHolder.Unknown"/> if nothing is named.</summary>
    public static StoreHolder HeldBy(string dataDir)
    {
        try
        {
            using var file = Posix.OpenNoFollow(Path.Combine(dataDir, FileName), create: false, readOnly: true);
            Span<byte> word = stackalloc byte[16];
            var name = System.Text.Encoding.ASCII.GetString(word[..RandomAccess.Read(file, word, 0)]);
            return Enum.TryParse<StoreHolder>(name, ignoreCase: true, out var holder) && name.All(char.IsAsciiLetterLower) ? holder : StoreHolder.Unknown;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return StoreHolder.Unknown; }
    }

    /// <summary>How the operator's messages and the daemon's log name <paramref name="holder"/>.</summary>
    public static string Describe(StoreHolder holder) => holder switch
    {
        StoreHolder.Daemon => "another oniondrop daemon",
        StoreHolder.Pull => "a journalist's pull served while the daemon was stopped",
        StoreHolder.Compact => "oniondrop compact",
        StoreHolder.Recover => "oniondrop recover",
        _ => "another oniondrop process",
    };

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

    /// <summary>Writes the holder's name; a probe (Unknown) writes nothing. Best effort: a full disk must not keep anyone from the store.</summary>
    private void Name(StoreHolder holder)
    {
        if (holder == StoreHolder.Unknown) return;
        try
        {
            var word = System.Text.Encoding.ASCII.GetBytes(holder.ToString().ToLowerInvariant());
            RandomAccess.Write(_file.SafeFileHandle, word, 0);
            _file.SetLength(word.Length);
            _named = true;
        }
        catch (IOException) { }
    }

    public void Dispose()
    {
        // Emptied first: a name left behind would be read as the holder of whatever takes the lock next without naming itself.
        if (_named) try { _file.SetLength(0); } catch (IOException) { }
        _file.Dispose(); // closing the descriptor releases the flock
    }
}
