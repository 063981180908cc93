using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Pull;
using OnionDrop.Storage;

namespace OnionDrop.Daemon.Pull;

public static class PullSetup
{
    /// <summary>DATA/pull.sock (0600; only the daemon's own uid is served), where `oniondrop pull --stdio` relays journalists' SSH sessions while the daemon runs.</summary>
    public static IServiceCollection AddOnionDropPull(this IServiceCollection services)
    {
        services.AddSingleton(sp => new PullSocketListener(
            sp.GetRequiredService<ISealedBlobStore>(),
            sp.GetRequiredService<IOptions<OnionDropOptions>>().Value.DataDir,
            sp.GetRequiredService<ILogger<PullSocketListener>>()));
        services.AddHostedService(sp => sp.GetRequiredService<PullSocketListener>());
        return services;
    }
}
