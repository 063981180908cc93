using System.Net;
using System.Security.Cryptography;
using System.Text;
using OnionDrop.Sealing;
using OnionDrop.Testing;
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
    public async Task A_real_daemon_with_every_level_at_Trace_logs_no_request_and_nothing_a_source_sent()
    {
        using var temp = new TempDirectory();
        using var key = JournalistKey.Generate();
        var marker = "PROBE" + Convert.ToHexString(RandomNumberGenerator.GetBytes(12));
        var trace = new Dictionary<string, string>
        {
            ["Default"] = "Trace", ["Microsoft"] = "Trace", ["Microsoft.AspNetCore"] = "Trace",
            ["Microsoft.AspNetCore.Hosting.Diagnostics"] = "Trace", ["Microsoft.AspNetCore.Server.Kestrel"] = "Trace",
        };
        await using var daemon = await DaemonProcess.StartAsync(temp.Combine("data"), key.PublicKey.ToString(), logLevels: trace);

        // The marker in a path, a query, a header, a file's name and content, the message, and a malformed request.
        using (var client = new HttpClient { BaseAddress = daemon.BaseAddress })
        {
            client.DefaultRequestHeaders.Add("X-Probe", marker);
            Assert.That((int)(await client.GetAsync($"/?q={marker}")).StatusCode, Is.EqualTo(200));
            Assert.That((int)(await client.GetAsync($"/{marker}")).StatusCode, Is.EqualTo(404));
            var form = new MultipartFormDataContent();
            form.Add(new ByteArrayContent(Encoding.ASCII.GetBytes(marker)), "files", $"{marker}.txt");
            form.Add(new StringContent(marker), "message");
            Assert.That((int)(await client.PostAsync("/", form)).StatusCode, Is.EqualTo(200));
        }
        var bad = await RawHttp.SendAsync(new IPEndPoint(IPAddress.Loopback, daemon.BaseAddress.Port),
            RawHttp.Ascii($"POST /{marker} HTTP/1.1\r\nHost: localhost\r\nContent-Type: multipart/form-data\r\nContent-Length: 5\r\n\r\nhello"));
        Assert.That(bad.Status, Is.InRange(400, 499));
        Assert.That(await daemon.StopAsync(), Is.Zero, daemon.Output);

        Assert.That(daemon.Output, Does.Contain("dbug: ").Or.Contain("trce: "), "the verbose levels took effect");
        Assert.That(daemon.Output, Does.Not.Contain(marker), "nothing a source sent, not even a path");
        Assert.That(daemon.Output, Does.Not.Contain("Request starting").And.Not.Contain("Request finished"), "no access log");
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
