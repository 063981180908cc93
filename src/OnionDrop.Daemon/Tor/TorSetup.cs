using Microsoft.Extensions.DependencyInjection;

namespace OnionDrop.Daemon.Tor;

public static class TorSetup
{
    public static IServiceCollection AddOnionDropTor(this IServiceCollection services) => services; // filled in by its owner
}
