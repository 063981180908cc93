using Microsoft.Extensions.DependencyInjection;

namespace OnionDrop.Daemon.Pull;

public static class PullSetup
{
    public static IServiceCollection AddOnionDropPull(this IServiceCollection services) => services; // filled in by its owner
}
