using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// Where and how Kestrel listens: always the Unix socket tor forwards the onion service to, optionally one
/// loopback TCP port, nothing else. Limits are tuned for Tor: slow circuits are normal, stalls are not.
/// </summary>
public sealed class WebListeners(IOptions<OnionDropOptions> options) : IConfigureOptions<KestrelServerOptions>
{
    public const string SocketName = "web.sock";

    /// <summary>Room for part headers, boundaries and the message on top of the files' own bytes.</summary>
    public static long MaxRequestBodyBytes(OnionDropOptions o) =>
        o.MaxSubmissionBytes + (long)o.MaxMessageChars * 4 + (o.MaxFiles + 8L) * 20 * 1024 + 64 * 1024;

    public static string SocketPath(OnionDropOptions o) => Path.Combine(o.DataDir, SocketName);

    public void Configure(KestrelServerOptions kestrel)
    {
        var o = options.Value;

        // Endpoints come from OnionDrop's own options only: an inherited "Kestrel:Endpoints" or "urls"
        // setting must never open a public listener.
        kestrel.Configure(new ConfigurationBuilder().Build(), reloadOnChange: false);

        kestrel.AddServerHeader = false;
        kestrel.AllowSynchronousIO = false;

        var limits = kestrel.Limits;
        limits.MaxRequestBodySize = MaxRequestBodyBytes(o);
        limits.MaxRequestHeaderCount = 40;
        limits.MaxRequestHeadersTotalSize = 16 * 1024;
        limits.MaxRequestLineSize = 4 * 1024;
        limits.MaxRequestBufferSize = 1024 * 1024;
        // Tor circuits can take a while to deliver headers and run at a few kB/s; a moving upload must
        // survive. A stalled one is cut by the upload handler's idle timeout instead.
        limits.RequestHeadersTimeout = TimeSpan.FromSeconds(60);
        limits.KeepAliveTimeout = TimeSpan.FromSeconds(120);
        limits.MinRequestBodyDataRate = new MinDataRate(bytesPerSecond: 64, gracePeriod: TimeSpan.FromSeconds(60));
        limits.MinResponseDataRate = new MinDataRate(bytesPerSecond: 64, gracePeriod: TimeSpan.FromSeconds(60));
        limits.MaxConcurrentUpgradedConnections = 0;

        var socket = SocketPath(o);
        PrepareSocketPath(o.DataDir, socket);
        kestrel.ListenUnixSocket(socket, l => l.Protocols = HttpProtocols.Http1);

        if (!string.IsNullOrWhiteSpace(o.Listen))
        {
            // The validator has already refused anything else; refuse again rather than trust ordering.
            if (!LoopbackEndpoint.TryParse(o.Listen, out var endpoint, out var error))
                throw new InvalidOperationException(error);
            kestrel.Listen(endpoint, l => l.Protocols = HttpProtocols.Http1);
        }
    }

    /// <summary>The data directory is 0700, so the socket is reachable by the daemon's user (and its tor) only.</summary>
    private static void PrepareSocketPath(string dataDir, string socket)
    {
        if (!Directory.Exists(dataDir))
            Directory.CreateDirectory(dataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        // A socket left by a daemon that was killed would make bind fail; daemon.lock rules out a live one.
        if (Directory.Exists(socket))
            throw new InvalidOperationException($"{socket} is a directory, not the daemon's socket");
        if (Path.Exists(socket))
            File.Delete(socket);
    }

    /// <summary>Called once Kestrel has bound: narrow the socket to the daemon's user.</summary>
    public static void RestrictSocket(OnionDropOptions o)
    {
        var socket = SocketPath(o);
        if (Path.Exists(socket))
            File.SetUnixFileMode(socket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
    }
}
