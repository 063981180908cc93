using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace OnionDrop.Daemon.Web;

public static class WebSetup
{
    public static IServiceCollection AddOnionDropWeb(this IServiceCollection services, IWebHostBuilder webHost) => services; // filled in by its owner

    public static WebApplication MapOnionDropWeb(this WebApplication app) => app;
}
