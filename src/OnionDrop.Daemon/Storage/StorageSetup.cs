using Microsoft.Extensions.DependencyInjection;

namespace OnionDrop.Daemon.Storage;

public static class StorageSetup
{
    public static IServiceCollection AddOnionDropStorage(this IServiceCollection services) => services; // filled in by its owner
}
