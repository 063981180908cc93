using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Pull;
using OnionDrop.Daemon.Status;
using OnionDrop.Daemon.Storage;
using OnionDrop.Daemon.Tor;
using OnionDrop.Daemon.Web;

namespace OnionDrop.Daemon.Hosting;

/// <summary>Builds the daemon: options, then one registration per concern, then the web endpoints.</summary>
public static class DaemonHost
{
    public static readonly TimeSpan ShutdownTimeout = TimeSpan.FromSeconds(15);

    /// <param name="configuration">Already layered by the caller: config file, environment, command line.</param>
    public static WebApplication Build(IConfiguration configuration)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            // The configuration is the caller's; no appsettings.json is read from the working directory, and
            // nothing watches it: under systemd that directory is "/", and the default file watcher would put
            // an inotify watch on every directory of the system (41,166 of them, seen here).
            ContentRootPath = AppContext.BaseDirectory,
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
        });
        builder.Configuration.AddConfiguration(configuration);
        builder.Host.UseSystemd();
        // Uploads still in flight at a stop get this long to finish, then are cut (nothing of them is kept), so that
        // tor's stop and the status file's last word fit inside the unit's TimeoutStopSec (30 s). The host's own
        // default, 30 s, let a stop with slow uploads run past it and end in a SIGKILL of everything.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ShutdownTimeout);
        // A stop while tor is still starting is reported by serve in one line, not by the host with a stack trace.
        StopDuringStartLogger.Register(builder.Services);

        builder.Services.AddOptions<OnionDropOptions>()
            .Bind(builder.Configuration.GetSection(OnionDropOptions.Section))
            .ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<OnionDropOptions>, OnionDropOptionsValidator>();

        builder.Services.AddOnionDropStorage();
        builder.Services.AddOnionDropWeb();
        builder.Services.AddOnionDropTor();
        builder.Services.AddOnionDropPull();
        builder.Services.AddOnionDropStatus();

        var app = builder.Build();
        app.MapOnionDropWeb();
        return app;
    }
}
