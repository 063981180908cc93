using Microsoft.AspNetCore.Http;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// Which Host headers are served. Through the onion service tor hands us whatever the source's browser
/// sent, i.e. our own .onion name (possibly with a subdomain, which routes to the same service). The
/// loopback listener answers to localhost names only, which defeats DNS rebinding from a local browser.
/// </summary>
public sealed class HostAllowList(OnionServiceAddress onion)
{
    public bool Allows(HostString hostHeader)
    {
        if (!hostHeader.HasValue) return false;
        var host = hostHeader.Host.ToLowerInvariant().TrimEnd('.');
        if (host is "localhost" or "127.0.0.1" or "[::1]" or "::1") return true;

        // The service is the label before "onion": "sub.NAME.onion" and "NAME.onion" both reach NAME.
        var labels = host.Split('.');
        if (labels.Length < 2 || labels[^1] != "onion") return false;
        var service = labels[^2] + ".onion";
        if (!OnionServiceAddress.IsV3OnionName(service)) return false;
        if (hostHeader.Port is { } port && port != 80) return false;
        // Until our own name is known (no tor yet, or tor still starting) any well-formed v3 name is
        // accepted: only tor can reach the Unix socket, and it only delivers our service's streams.
        return onion.Host is not { } ours || service == ours;
    }
}
