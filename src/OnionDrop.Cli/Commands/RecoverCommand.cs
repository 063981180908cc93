using System.CommandLine;
using OnionDrop.Storage;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop recover`: when catalog.db is lost but blobs/ still holds the sealed submissions (the daemon then
/// refuses to start rather than sweep them away), makes a new catalog with an entry for each; with a catalog in
/// place, enters the sealed files the daemon kept in orphaned/ (SealedBlobStore.OpenRecovering). Run with the
/// daemon stopped, as the data directory's owner.
/// </summary>
public static class RecoverCommand
{
    public static Command Create()
    {
        var data = new DataDirectoryOptions();
        var command = new Command("recover", "Rebuild a lost catalog.db from the sealed blobs in blobs/ (the daemon stopped). " +
            "Every recovered submission waits for every journalist again; fetch skips those it already holds.")
        {
            data.DataDir, data.Config,
        };
        command.SetAction(parse =>
        {
            OnionDrop.Daemon.Hosting.OnionDropOptions options;
            try { options = data.Load(parse); }
            catch (ConfigurationError e) { return Fail(e.Message, 2); }
            if (!Directory.Exists(Path.Combine(options.DataDir, SealedBlobStore.BlobsDirectoryName)))
                return Fail($"no {SealedBlobStore.BlobsDirectoryName}/ in {options.DataDir}: nothing to recover from", 2);
            // The new catalog.db must keep the owner the daemon needs.
            if (DataDirectoryOptions.OtherOwner(options.DataDir) is { } owner)
                return Fail($"{options.DataDir} belongs to uid {owner}: run this as that user (e.g. sudo -u oniondrop oniondrop recover)", 1);
            int? recovered;
            try
            {
                using var store = SealedBlobStore.OpenRecovering(options.DataDir, options.Retention.ToStoreOptions() with { Holder = StoreHolder.Recover }, out recovered);
            }
            catch (StoreLockedException) { return Fail("the daemon is running: stop it first (systemctl stop oniondrop)", 1); }
            catch (UnauthorizedAccessException e) { return Fail($"{options.DataDir}: {e.Message} (run as the daemon's user)", 1); }
            catch (ArgumentException e) { return Fail("retention settings: " + e.Message, 2); }
            catch (IOException e) { return Fail(e.Message, 1); }
            catch (LiteDB.LiteException e) { return Fail($"the catalog could not be written: {e.Message}", 1); }

            Console.Out.WriteLine(recovered is { } n
                ? $"oniondrop recover: {SealedBlobStore.CatalogFileName} now lists the {n} submission(s) it lacked, from their sealed files in blobs/ and {SealedBlobStore.OrphanedDirectoryName}/, each waiting for every journalist again"
                : $"oniondrop recover: {SealedBlobStore.CatalogFileName} is in place (or was put back from its backup) and lists every sealed file: nothing to recover; start the daemon");
            return 0;
        });
        return command;
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine("oniondrop recover: " + message);
        return code;
    }
}
