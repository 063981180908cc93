using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Storage;

namespace OnionDrop.Daemon.Storage;

public static class StorageSetup
{
    /// <summary>
    /// The daemon's one <see cref="SealedBlobStore"/> (it holds DATA/daemon.lock: the catalog's only writer),
    /// opened at start-up so a second daemon on the same data directory fails fast, and the retention loop.
    /// </summary>
    public static IServiceCollection AddOnionDropStorage(this IServiceCollection services)
    {
        services.AddSingleton(sp =>
        {
            var options = sp.GetRequiredService<IOptions<OnionDropOptions>>().Value;
            var log = sp.GetRequiredService<ILoggerFactory>().CreateLogger("OnionDrop.Storage");
            // A pull served directly while the daemon was stopped lets go as soon as it sees the daemon waiting (within a
            // second); `compact` or `recover` run by hand do not, and are given this long to end.
            var lockWait = TimeSpan.FromSeconds(30);
            var store = SealedBlobStore.Open(options.DataDir, options.Retention.ToStoreOptions() with
            {
                Logger = log, LockWait = lockWait, Holder = StoreHolder.Daemon,
            });
            if (store.WaitedFor is { } waited)
                log.LogWarning("store: {DataDir} was in use by {Holder}, which let go after {Seconds:0.0} s{Why}", options.DataDir,
                    DataDirectoryLock.Describe(waited.Holder), waited.Time.TotalSeconds,
                    waited.Holder == StoreHolder.Pull ? " (it stops for the daemon; its fetch says to run it again)" : "");
            return store;
        });
        services.AddSingleton<ISealedBlobStore>(sp => sp.GetRequiredService<SealedBlobStore>());
        services.AddHostedService<RetentionService>();
        return services;
    }
}

/// <summary>
/// At start-up and then every CheckInterval: blurs the files' times (SealedBlobStore.BlurFileTimes),
/// makes new spare files for uploads to write into, applies retention and compacts after deletions.
/// </summary>
internal sealed class RetentionService(SealedBlobStore store, IOptions<OnionDropOptions> options, ILogger<RetentionService> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var interval = options.Value.Retention.CheckInterval;
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                store.BlurFileTimes();
                store.RefillSpareFiles();
                var deleted = store.ApplyRetention();
                if (deleted > 0)
                {
                    store.Compact();
                    log.LogInformation("retention: deleted {Count} submission(s), catalog compacted", deleted);
                }
            }
            // A file the daemon's user may not touch (a restore that left one root's) is the operator's to fix, like a
            // full disk: said every pass, while the drop box goes on taking submissions.
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or LiteDB.LiteException)
            {
                log.LogError("retention: {Error}", e.Message);
            }
            await Task.Delay(interval, stoppingToken).ContinueWith(_ => { }, CancellationToken.None);
        }
    }
}
