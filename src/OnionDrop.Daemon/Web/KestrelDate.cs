using System.Reflection;
using Microsoft.AspNetCore.Hosting.Server;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// Makes the Date header of Kestrel's own responses say the day only, as the application's do
/// (<see cref="ResponseDate"/>). Kestrel answers a malformed request (400, 431, 414, 505...) before the
/// application runs, stamped with the clock to the second: one bad byte sent to the onion service would read the
/// server's clock, whatever the application's pages hide. Kestrel has no option for it, so its date source (a
/// private <see cref="TimeProvider"/> it reads once a second) is swapped for one that tells the shown day.
/// </summary>
public static class KestrelDate
{
    private const string ManagerType = "Microsoft.AspNetCore.Server.Kestrel.Core.Internal.Http.DateHeaderValueManager";

    /// <summary>
    /// To be called before the server starts (its first heartbeat reads the clock). False when this version of
    /// Kestrel is built differently: the caller warns the operator, and a test fails on such an upgrade.
    /// </summary>
    public static bool ShowDayOnly(IServer server, ResponseDate date)
    {
        const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;
        // KestrelServer (the public wrapper) holds KestrelServerImpl; the host registers either.
        var impl = server.GetType().GetField("_innerKestrelServer", Instance)?.GetValue(server) ?? server;
        var context = impl.GetType().GetProperty("ServiceContext", Instance)?.GetValue(impl);
        var manager = context?.GetType().GetProperty("DateHeaderValueManager", Instance)?.GetValue(context);
        if (manager?.GetType().FullName != ManagerType) return false;
        var clock = manager.GetType().GetField("_timeProvider", Instance);
        if (clock?.FieldType != typeof(TimeProvider)) return false;
        clock.SetValue(manager, new DayOnlyClock(date));
        return true;
    }

    /// <summary>Only Kestrel's Date header reads this clock; its timeouts keep their own.</summary>
    private sealed class DayOnlyClock(ResponseDate date) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => date.ShownDay();
    }
}
