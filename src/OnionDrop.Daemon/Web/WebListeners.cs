using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Tor;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// Where and how Kestrel listens: always the Unix socket tor forwards the onion service to, optionally one
/// loopback TCP port, nothing else. Limits are tuned for Tor: slow circuits are normal, stalls are not.
/// </summary>
/// <param name="store">
/// Taken only to be opened first: it holds DATA/daemon.lock, which is what makes a web.sock found here a dead
/// daemon's. Kestrel is set up before the hosted services that open the store, so a second `serve` on a running
/// daemon's data directory deleted that daemon's live socket (its onion service unreachable for good) and only then
/// found the lock held.
/// </param>
public sealed class WebListeners(IOptions<OnionDropOptions> options, OnionDrop.Storage.SealedBlobStore store) : IConfigureOptions<KestrelServerOptions>
{
    public const string SocketName = OnionDrop.Tor.TorrcValues.WebSocketName;

    /// <summary>Room for part headers, boundaries and the message on top of the files' own bytes.</summary>
    public static long MaxRequestBodyBytes(OnionDropOptions o) =>
        o.MaxSubmissionBytes + (long)o.MaxMessageChars * 4 + (o.MaxFiles + 8L) * 20 * 1024 + 64 * 1024;

    /// <summary>
    /// Connections open at once, on both listeners together: four per upload place (256 by default). A connection
    /// that sends pipelined requests and never reads the answers holds about 1.2-1.9 MB (19 pool blocks, found with
    /// dotnet-gcdump), so without a bound 1,000 of them took the daemon to 1.3 GB, and a few thousand would exhaust
    /// the memory. Sources need one or two each, and the uploads' own places.
    /// </summary>
    public static long MaxConnections(OnionDropOptions o) => o.MaxConcurrentUploads * 4L;

    /// <summary>WebSocketDirectory/web.sock, or DATA/web.sock.</summary>
    public static string SocketPath(OnionDropOptions o) => Path.Combine(SocketDirectory(o), SocketName);

    public static string SocketDirectory(OnionDropOptions o) =>
        string.IsNullOrWhiteSpace(o.WebSocketDirectory) ? o.DataDir : o.WebSocketDirectory.Trim();

    /// <summary>The group web.sock is shared with (WebSocketGroup), or null.</summary>
    public static int? SocketGroupId(OnionDropOptions o) =>
        string.IsNullOrWhiteSpace(o.WebSocketGroup) ? null
        : UnixAccount.GroupId(o.WebSocketGroup.Trim()) ?? throw new InvalidOperationException($"WebSocketGroup \"{o.WebSocketGroup}\" is not a group in /etc/group");

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
        // Past it Kestrel closes a new connection at once: a flood is refused, not given the memory.
        limits.MaxConcurrentConnections = MaxConnections(o);

        ArgumentNullException.ThrowIfNull(store); // open, daemon.lock held, before anything below touches the socket
        var socket = SocketPath(o);
        PrepareSocketDirectory(o);
        if (Directory.Exists(socket))
            throw new InvalidOperationException($"{socket} is a directory, not the daemon's socket");
        // A socket left by a daemon that was killed would make bind fail; daemon.lock rules out a live one.
        if (Path.Exists(socket))
            File.Delete(socket);
        kestrel.ListenUnixSocket(socket, l => l.Protocols = HttpProtocols.Http1);

        if (!string.IsNullOrWhiteSpace(o.Listen))
        {
            // The validator has already refused anything else; refuse again rather than trust ordering.
            if (!LoopbackEndpoint.TryParse(o.Listen, out var endpoint, out var error))
                throw new InvalidOperationException(error);
            kestrel.Listen(endpoint, l => l.Protocols = HttpProtocols.Http1);
        }
    }

    private const UnixFileMode Owner = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    /// <summary>
    /// The socket's directory, before tor is pointed at it. The data directory is 0700, so a socket there is the
    /// daemon's user's (and its own tor's) only. A WebSocketDirectory of its own with a WebSocketGroup is 2710 with
    /// that group: its members (the system tor's user) may reach the socket by name and may not list or change
    /// anything, and setgid makes the socket born in the group. Under systemd the unit's drop-in has already made
    /// it so (the sandbox forbids this process chown and setgid bits); started by hand, the daemon does it itself.
    /// </summary>
    public static void PrepareSocketDirectory(OnionDropOptions o)
    {
        var dir = SocketDirectory(o);
        if (!Directory.Exists(dir))
            Directory.CreateDirectory(dir, Owner);
        if (string.IsNullOrWhiteSpace(o.WebSocketDirectory)) return; // the data directory: its owners decide its mode
        var gid = SocketGroupId(o);
        var mode = gid is null ? Owner : Owner | UnixFileMode.GroupExecute | UnixFileMode.SetGroup;
        try
        {
            if (gid is { } g && UnixAccess.Of(dir).Gid != g) UnixAccess.ChangeGroup(dir, g);
            if (File.GetUnixFileMode(dir) != mode) File.SetUnixFileMode(dir, mode);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InvalidOperationException($"cannot make {dir} {Convert.ToString((int)mode, 8)}{(gid is null ? "" : " with group " + o.WebSocketGroup)}: {e.Message}" +
                " (under systemd, the drop-in scripts/oniondrop-system-tor.conf prepares it: ExecStartPre=+/usr/bin/install -d ...)");
        }
    }

    /// <summary>Called once Kestrel has bound: the socket is the daemon's user's (0600), or shared with WebSocketGroup (0660).</summary>
    public static void RestrictSocket(OnionDropOptions o)
    {
        var socket = SocketPath(o);
        if (!Path.Exists(socket)) return;
        const UnixFileMode userOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        if (SocketGroupId(o) is { } gid)
        {
            // Born in the group in the setgid directory; chgrp only if it somehow was not.
            if (UnixAccess.Of(socket).Gid != gid) UnixAccess.ChangeGroup(socket, gid);
            File.SetUnixFileMode(socket, userOnly | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
        }
        else File.SetUnixFileMode(socket, userOnly);
    }
}
