using Microsoft.Extensions.DependencyInjection;

namespace OnionDrop.Daemon.Status;

public static class StatusSetup
{
    public static IServiceCollection AddOnionDropStatus(this IServiceCollection services) => services; // filled in by its owner
}
