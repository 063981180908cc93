using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// ASP.NET Core's request logging (an access log: paths, hosts, sizes, timings) stays off whatever the
/// operator's "Logging" configuration says, including a provider's own rules, which outrank plain ones.
/// </summary>
public sealed class NoAccessLogTests
{
    [Test]
    public async Task Request_logging_stays_off_even_when_the_configuration_turns_everything_up()
    {
        await using var daemon = await TestDaemon.StartAsync(s =>
        {
            s["Logging:LogLevel:Default"] = "Trace";
            s["Logging:LogLevel:Microsoft.AspNetCore"] = "Trace";
            s["Logging:Console:LogLevel:Default"] = "Trace";
            s["Logging:Console:LogLevel:Microsoft.AspNetCore"] = "Trace";
            s["Logging:Console:LogLevel:Microsoft.AspNetCore.Hosting.Diagnostics"] = "Trace";
        });
        var loggers = daemon.App.Services.GetRequiredService<ILoggerFactory>();

        // What ASP.NET Core asks before writing "Request starting ... POST http://.../ ..." and its kin.
        foreach (var category in new[] { "Microsoft.AspNetCore.Hosting.Diagnostics", "Microsoft.AspNetCore.Server.Kestrel.Connections",
                                         "Microsoft.AspNetCore.Server.Kestrel.BadRequests", "Microsoft.AspNetCore.Routing.EndpointMiddleware" })
            Assert.That(loggers.CreateLogger(category).IsEnabled(LogLevel.Critical), Is.False, category);
        Assert.That(loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Information), Is.False, "Kestrel's chatter");

        // The rest of the operator's configuration still holds: Kestrel's warnings, and the daemon's own trace.
        Assert.That(loggers.CreateLogger("Microsoft.AspNetCore.Server.Kestrel").IsEnabled(LogLevel.Warning), Is.True);
        Assert.That(loggers.CreateLogger("OnionDrop.Daemon.Web.UploadHandler").IsEnabled(LogLevel.Trace), Is.True);
    }

    [Test]
    public async Task Without_any_logging_configuration_the_daemon_logs_from_Information_up()
    {
        await using var daemon = await TestDaemon.StartAsync();
        var loggers = daemon.App.Services.GetRequiredService<ILoggerFactory>();
        Assert.That(loggers.CreateLogger("OnionDrop.Daemon.Web.UploadHandler").IsEnabled(LogLevel.Information), Is.True);
        Assert.That(loggers.CreateLogger("OnionDrop.Daemon.Web.UploadHandler").IsEnabled(LogLevel.Debug), Is.False);
        Assert.That(loggers.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Critical), Is.False);
    }
}
