using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;

namespace OnionDrop.Daemon.Web;

/// <summary>The source's side: Kestrel on the onion service's Unix socket (and optionally loopback), and the site.</summary>
public static class WebSetup
{
    public static IServiceCollection AddOnionDropWeb(this IServiceCollection services)
    {
        services.AddSingleton<IConfigureOptions<KestrelServerOptions>, WebListeners>();
        services.RemoveAll<IMemoryPoolFactory<byte>>();
        services.AddSingleton<IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();
        services.AddSingleton(sp => sp.GetRequiredService<IOptions<OnionDropOptions>>().Value);
        services.AddSingleton<SubmissionCounters>();
        services.AddSingleton<OnionServiceAddress>();
        services.AddSingleton<HostAllowList>();
        services.AddSingleton<SealingRecipients>();
        services.AddSingleton(new RecentSubmissions(TimeProvider.System));
        services.AddSingleton<Pages>();
        services.AddSingleton<UploadHandler>();
        services.AddSingleton<SourceSite>();

        // No access log: ASP.NET Core's request logging would record paths, hosts and timings per request. Applied
        // after the configuration's rules, and again whenever they are reloaded, so no configuration undoes it.
        services.PostConfigure<LoggerFilterOptions>(NoAccessLog.Enforce);
        return services;
    }

    public static WebApplication MapOnionDropWeb(this WebApplication app)
    {
        // Resolved lazily, so that bad options surface from the start-up validation as one clear message.
        app.Lifetime.ApplicationStarted.Register(() => WebListeners.RestrictSocket(app.Services.GetRequiredService<OnionDropOptions>()));
        if (!KestrelDate.ShowDayOnly(app.Services.GetRequiredService<IServer>(), ResponseDate.Shared))
            app.Logger.LogWarning("This version of Kestrel could not be made to date its own error responses by the day only: they carry the server's clock to the second (docs/threat-model.md)");
        app.Run(context => context.RequestServices.GetRequiredService<SourceSite>().HandleAsync(context));
        return app;
    }
}
