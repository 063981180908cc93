using Microsoft.Extensions.DependencyInjection;

namespace OnionDrop.Daemon.Status;

public static class StatusSetup
{
    /// <summary>The status file writer (DATA/status.json). Tor's state comes from the <see cref="OnionDrop.Tor.ITorStatus"/> the tor setup registers.</summary>
    public static IServiceCollection AddOnionDropStatus(this IServiceCollection services)
    {
        services.AddHostedService<StatusFileWriter>();
        return services;
    }
}
