using System.CommandLine;
using System.Net.Sockets;
using OnionDrop.Pull;
using OnionDrop.Storage;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop compact`: rebuilds catalog.db now, so the space of deleted entries goes back to the file system
/// (retention does the same on its schedule, after it deletes). The daemon is the catalog's only writer: while
/// it runs, it is asked to do it over pull.sock; when it is stopped, the store is opened and compacted here,
/// as the data directory's owner only, so the rebuilt catalog.db keeps the owner the daemon needs.
/// </summary>
public static class CompactCommand
{
    public static Command Create()
    {
        var data = new DataDirectoryOptions();
        var command = new Command("compact", "Compact the catalog (catalog.db) now, giving deleted entries' space back; asks the daemon if it runs.")
        {
            data.DataDir, data.Config,
        };
        command.SetAction(async (parse, ct) =>
        {
            OnionDrop.Daemon.Hosting.OnionDropOptions options;
            try { options = data.Load(parse); }
            catch (ConfigurationError e) { return Fail(e.Message, 2); }
            var catalog = Path.Combine(options.DataDir, SealedBlobStore.CatalogFileName);
            // Without catalog.db but with a backup, a compaction was cut off: opening the store below puts it back.
            if (!File.Exists(catalog) && !SealedBlobStore.HasRebuildBackup(options.DataDir))
            {
                // File.Exists also says no for a file we may not see: tell that apart from a missing catalog.
                try { _ = Directory.EnumerateFileSystemEntries(options.DataDir).Any(); }
                catch (UnauthorizedAccessException) { return Fail($"cannot read {options.DataDir}: permission denied (run as root or the daemon's user)", 1); }
                catch (IOException) { }
                return Fail($"no catalog at {catalog}", 2);
            }

            var before = CatalogBytes(options.DataDir);
            string how;
            try
            {
                if (DataDirectoryLock.IsHeld(options.DataDir))
                {
                    await CompactRequest.SendAsync(Path.Combine(options.DataDir, PullSocketListener.FileName), ct);
                    how = "by the running daemon";
                }
                else
                {
                    // LiteDB rebuilds into a new file: made by anyone else (root), the daemon could no longer open it.
                    if (DataDirectoryOptions.OtherOwner(options.DataDir) is { } owner)
                        return Fail($"the daemon is not running and {options.DataDir} belongs to uid {owner}: run this as that user " +
                                    "(e.g. sudo -u oniondrop oniondrop compact), so catalog.db keeps its owner", 1);
                    using (var store = SealedBlobStore.Open(options.DataDir, options.Retention.ToStoreOptions() with { Holder = StoreHolder.Compact }))
                    {
                        // The drop box comes first: a daemon that started meanwhile (it waits for the store, 30 s at most)
                        // gets it before the rebuild begins, the catalog as it was. A rebuild under way is finished: LiteDB's
                        // cannot stop halfway, and it takes a second or less.
                        if (DataDirectoryLock.IsWanted(options.DataDir))
                            return Fail("the daemon started and takes the store over: nothing was compacted; run compact again: it asks the daemon now", 1);
                        store.Compact();
                    }
                    how = "here (the daemon is not running)";
                }
            }
            catch (StoreLockedException) { return Fail("the daemon started meanwhile; run compact again", 1); }
            // No pull.sock: the lock's holder is no running daemon (a pull serves directly while it is stopped) or one not yet listening or gone.
            catch (SocketException) when (!Path.Exists(Path.Combine(options.DataDir, PullSocketListener.FileName)))
            {
                return Fail($"{options.DataDir} is in use by another oniondrop process, and no daemon listens on {PullSocketListener.FileName}: " +
                            "a journalist's pull served while the daemon is stopped (or another compact, or the daemon starting or stopping); run compact again once it ends", 1);
            }
            catch (SocketException e) { return Fail($"the daemon holds {options.DataDir} but {PullSocketListener.FileName} does not answer: {e.Message}", 1); }
            catch (UnauthorizedAccessException e) { return Fail($"{options.DataDir}: {e.Message} (run as the daemon's user)", 1); }
            catch (ArgumentException e) { return Fail("retention settings: " + e.Message, 2); }
            catch (IOException e) { return Fail(e.Message, 1); }

            var after = CatalogBytes(options.DataDir);
            Console.Out.WriteLine($"oniondrop compact: {catalog} and its log: {before:N0} -> {after:N0} bytes, compacted {how}");
            return 0;
        });
        return command;
    }

    /// <summary>catalog.db with LiteDB's log beside it (catalog-log.db): a rebuild empties the log into the file.</summary>
    private static long CatalogBytes(string dataDir) => SealedBlobStore.CatalogFiles(dataDir).Sum(f => new FileInfo(f).Length);

    /// <summary>
    /// Messages can carry the daemon's answer on pull.sock, i.e. text from the daemon's user, on root's terminal
    /// (`sudo oniondrop compact`): shown without control characters, never obeyed (as `status` shows status.json).
    /// </summary>
    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine("oniondrop compact: " + TerminalText.Printable(message));
        return code;
    }
}
