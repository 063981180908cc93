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
            // A pull serving directly while the daemon was stopped may still hold the lock for a moment.
            var lockWait = TimeSpan.FromSeconds(30);
            if (DataDirectoryLock.IsHeld(options.DataDir))
                log.LogWarning("store: {DataDir} is in use by another oniondrop process (daemon.lock): waiting up to {Seconds} s for it to stop",
                    options.DataDir, lockWait.TotalSeconds);
            return SealedBlobStore.Open(options.DataDir, options.Retention.ToStoreOptions() with { Logger = log, LockWait = lockWait });
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
