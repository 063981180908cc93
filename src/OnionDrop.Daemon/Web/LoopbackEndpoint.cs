using System.Diagnostics.CodeAnalysis;
using System.Net;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// The optional TCP listener's address. Only loopback is ever accepted: the source's way in is the onion
/// service, and a public listener would expose the form (and the server's address) to the clear web.
/// </summary>
public static class LoopbackEndpoint
{
    /// <summary>Parses a loopback address with its port: "127.0.0.1:PORT" (any of 127.0.0.0/8), "[::1]:PORT" or "localhost:PORT" (port 0 picks a free one).</summary>
    public static bool TryParse(string text, [NotNullWhen(true)] out IPEndPoint? endpoint, [NotNullWhen(false)] out string? error)
    {
        endpoint = null;
        text = text.Trim();
        if (text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
            text = "127.0.0.1:" + text["localhost:".Length..];
        if (!IPEndPoint.TryParse(text, out var parsed) || !text.Contains(':') || text.EndsWith(']'))
        {
            error = $"Listen \"{text}\" is not an address with a port, e.g. 127.0.0.1:8080";
            return false;
        }
        if (!IPAddress.IsLoopback(parsed.Address))
        {
            error = $"Listen \"{text}\" is not a loopback address: only a loopback address (127.0.0.0/8 or [::1]) or localhost may be used (sources come in through the onion service)";
            return false;
        }
        endpoint = parsed;
        error = null;
        return true;
    }
}
