using Microsoft.Extensions.Logging;
using OnionDrop.Files;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>One life of the onion service: a control connection to a tor that serves it.</summary>
internal interface ITorSession : IAsyncDisposable
{
    TorControlClient Control { get; }

    /// <summary>"xxx.onion".</summary>
    string OnionAddress { get; }

    int? TorPid { get; }

    /// <summary>Completes when tor exits or the control connection is lost.</summary>
    Task Ended { get; }

    /// <summary>Why it ended, for the log (tor's exit code and last words).</summary>
    string EndReason();

    /// <summary>Ends it on purpose: tor shut down (Launch) or the service removed (System).</summary>
    Task StopAsync();

    /// <summary>Gives up on a tor that stopped answering: ours is killed (Launch), the connection dropped (System). <see cref="Ended"/> follows.</summary>
    Task AbandonAsync();
}

/// <summary>Launch mode: our own tor process with the HiddenServiceDir from torrc.template.</summary>
internal sealed class LaunchedTorSession(TorProcess tor, string onionAddress) : ITorSession
{
    public static async Task<LaunchedTorSession> StartAsync(TorSupervisorOptions options, ILogger logger, CancellationToken cancellationToken)
    {
        var template = string.IsNullOrEmpty(options.TorrcTemplate) ? null : await ReadTemplateAsync(options.TorrcTemplate, cancellationToken);
        var tor = await TorProcess.StartAsync(new TorLaunchSettings(options.DataDir)
        {
            TorPath = options.TorPath,
            Template = template,
            TemplateName = string.IsNullOrEmpty(options.TorrcTemplate) ? TorrcTemplate.FileName : options.TorrcTemplate,
            ExtraConfig = options.TorExtraConfig,
            WebSocket = options.WebSocket,
        }, logger, cancellationToken);
        try
        {
            var address = await ReadHostnameAsync(tor, cancellationToken);
            OnionServiceKey.MakeDurable(tor.Values, logger);
            return new LaunchedTorSession(tor, address);
        }
        catch
        {
            await tor.DisposeAsync();
            throw;
        }
    }

    private static async Task<string> ReadTemplateAsync(string path, CancellationToken cancellationToken)
    {
        try { return await File.ReadAllTextAsync(path, cancellationToken); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TorConfigurationException($"cannot read the torrc template {path}: {e.Message}");
        }
    }

    /// <summary>tor writes HiddenServiceDir/hostname when it loads (or creates) the service key, right at start.</summary>
    private static async Task<string> ReadHostnameAsync(TorProcess tor, CancellationToken cancellationToken)
    {
        var hostname = tor.Values.HostnameFile;
        for (var i = 0; i < 300; i++)
        {
            if (File.Exists(hostname))
            {
                var text = (await File.ReadAllTextAsync(hostname, cancellationToken)).Trim();
                if (text.EndsWith(".onion", StringComparison.Ordinal)) return text;
            }
            if (tor.Exited.IsCompleted) break;
            await Task.Delay(100, cancellationToken);
        }
        throw new TorStartException($"tor did not write the onion service's hostname to {hostname}: {tor.RecentProblems()}");
    }

    public TorProcess Process => tor;
    public TorControlClient Control => tor.Control;
    public string OnionAddress => onionAddress;
    public int? TorPid => tor.Pid;
    public Task Ended { get; } = Task.WhenAny(tor.Exited, LostControlAsync(tor));

    /// <summary>The control connection closing usually means tor is exiting: give it a moment, to report its exit code.</summary>
    private static async Task LostControlAsync(TorProcess tor)
    {
        await tor.Control.Completion;
        await Task.WhenAny(tor.Exited, Task.Delay(TimeSpan.FromSeconds(5)));
    }

    public string EndReason() => tor.Exited.IsCompleted
        ? $"tor (pid {tor.Pid}) {TorProcess.DescribeExit(tor.Exited.Result)}" + (tor.LastWarning is null ? "" : $"; its last warning: {tor.LastWarning}")
        : $"the control connection to tor (pid {tor.Pid}) closed";

    // A tor with no relay exits at once on SHUTDOWN; only a hung one needs the kill. Short, because it comes after the
    // uploads' wait (DaemonHost.ShutdownTimeout, 15 s) and both must fit in the unit's TimeoutStopSec (30 s).
    public Task StopAsync() => tor.StopAsync(TimeSpan.FromSeconds(5));

    public Task AbandonAsync()
    {
        tor.Kill();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => tor.DisposeAsync();
}

/// <summary>
/// System mode: the system's tor (e.g. Debian's tor@default) through its control socket. The service is
/// created with ADD_ONION from a key the daemon keeps in DATA/onion-service.key (0600), so its address
/// persists. It is not detached: it belongs to our control connection and disappears with it, so a dead
/// daemon never leaves an onion service pointing at nothing; the supervisor re-creates it on reconnect.
/// </summary>
internal sealed class SystemTorSession(TorControlClient control, string serviceId) : ITorSession
{
    public static async Task<SystemTorSession> StartAsync(TorSupervisorOptions options, ILogger logger, CancellationToken cancellationToken)
    {
        TorrcTemplate.CheckWebSocketPath(options.DataDir, options.WebSocket, addOnion: true);
        var keyFile = options.OnionServiceKeyFile;
        var storedKey = await ReadKeyAsync(keyFile, logger, cancellationToken);
        TorControlClient control;
        try
        {
            control = await TorControlClient.ConnectUnixAsync(options.SystemTorControlSocket, cancellationToken);
        }
        catch (System.Net.Sockets.SocketException e)
        {
            // connect()'s ENOENT comes as "Cannot assign requested address", which points at the network instead.
            var why = Path.Exists(options.SystemTorControlSocket) ? e.Message : "there is no such socket";
            throw new TorStartException($"cannot connect to the system tor's control socket {options.SystemTorControlSocket}: {why}" +
                " (is tor running with \"ControlSocket\" and \"CookieAuthentication 1\", and may the daemon's user open the socket?)");
        }
        try
        {
            await control.AuthenticateAsync(cancellationToken);
            await CheckTorCanReachWebSocketAsync(control, options, cancellationToken);
            var result = await control.AddOnionAsync(
                storedKey ?? "NEW:ED25519-V3",
                ["80,unix:" + options.WebSocket],
                flags: ["MaxStreamsCloseCircuit"], // as torrc.template's HiddenServiceMaxStreamsCloseCircuit 1
                options: [new("MaxStreams", "20"), new("PoWDefensesEnabled", "1"), new("PoWQueueRate", "250"), new("PoWQueueBurst", "2500")],
                cancellationToken);
            if (storedKey is null)
            {
                // Checked as it will be read back at the next start, lest the new address be refused then.
                if (result.PrivateKey is not { } created || !IsKey(created))
                    throw new TorStartException("tor created the onion service but returned no ED25519-V3 key the daemon can keep");
                await WriteKeyAsync(keyFile, created);
                logger.LogInformation("Created a new onion service key in {KeyFile}", keyFile);
            }
            return new SystemTorSession(control, result.ServiceId);
        }
        catch
        {
            await control.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// The system tor usually runs as another user (Debian: debian-tor), and connects to the web socket as that
    /// user for every source's stream. ADD_ONION would accept any target, so check it here, where a bad setup
    /// can still fail the start with a fix, instead of every source meeting a dead onion service.
    /// </summary>
    private static async Task CheckTorCanReachWebSocketAsync(TorControlClient control, TorSupervisorOptions options, CancellationToken cancellationToken)
    {
        var info = await control.GetInfoAsync(["process/uid", "process/user"], cancellationToken);
        if (!int.TryParse(info.GetValueOrDefault("process/uid"), out var uid) || uid < 0) return; // tor could not say: nothing to check against
        var account = UnixAccount.Find(uid) ?? new UnixAccount(uid, info.GetValueOrDefault("process/user") is { Length: > 0 } n ? n : $"uid {uid}", -1, new HashSet<int>());
        if (UnixAccess.WhyUnreachable(account, options.WebSocket, UnixAccess.EffectiveUid, options.WebSocketGroupId) is not { } why) return;
        var group = account.PrimaryGid >= 0 ? UnixAccount.GroupName(account.PrimaryGid) : account.Name;
        throw new TorStartException(
            $"the system tor runs as {account.Name}, which cannot reach the web socket {options.WebSocket}: {why}. " +
            $"Fix: give the socket a directory of its own that {account.Name} may enter, e.g. OnionDrop:WebSocketDirectory = /run/oniondrop " +
            $"and OnionDrop:WebSocketGroup = {group} (scripts/install.sh --tor system sets this up; see docs/tor.md)");
    }

    private static async Task<string?> ReadKeyAsync(string keyFile, ILogger logger, CancellationToken cancellationToken)
    {
        if (!File.Exists(keyFile)) return null;
        var mode = File.GetUnixFileMode(keyFile);
        if ((mode & ~(UnixFileMode.UserRead | UnixFileMode.UserWrite)) != 0)
        {
            logger.LogWarning("{KeyFile} was readable by others ({Mode}); set it to 0600", keyFile, mode);
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
        var key = (await File.ReadAllTextAsync(keyFile, cancellationToken)).Trim();
        // The key goes into ADD_ONION as it is: anything after a space would be read as more arguments (another Port=).
        if (!IsKey(key))
            throw new TorStartException($"the onion service key {keyFile} is damaged (not \"ED25519-V3:\" and the base64 of 64 bytes, " +
                "alone on its line): it holds this service's address, which sources know. Put the key back from a backup; or, to start over " +
                "with a new address on purpose, delete it", badConfiguration: true);
        return key;
    }

    /// <summary>What tor's ADD_ONION gives for a new key: "ED25519-V3:" and the base64 of the 64-byte expanded secret key, nothing else.</summary>
    internal static bool IsKey(string key) =>
        key.StartsWith(KeyPrefix, StringComparison.Ordinal) && key[KeyPrefix.Length..] is var body && body.Length == 88 && body.EndsWith("==", StringComparison.Ordinal)
        && body.AsSpan(0, 86).IndexOfAnyExcept(Base64Alphabet) < 0 && Convert.FromBase64String(body).Length == 64;

    private const string KeyPrefix = "ED25519-V3:";
    private static readonly System.Buffers.SearchValues<char> Base64Alphabet =
        System.Buffers.SearchValues.Create("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");

    private static async Task WriteKeyAsync(string keyFile, string key)
    {
        var temp = keyFile + ".tmp";
        File.Delete(temp);
        await using (var stream = new FileStream(temp, new FileStreamOptions
               {
                   Mode = FileMode.CreateNew, Access = FileAccess.Write, Options = FileOptions.WriteThrough,
                   UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        {
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(key + "\n"));
            stream.Flush(flushToDisk: true);
        }
        File.Move(temp, keyFile);
        // The rename is only in the directory until it is fsynced: a power cut could lose the key, and the address.
        FileSync.Fsync(Path.GetDirectoryName(Path.GetFullPath(keyFile))!);
    }

    public TorControlClient Control => control;
    public string OnionAddress => serviceId + ".onion";
    public int? TorPid => null;
    public Task Ended => control.Completion;
    public string EndReason() => "the system tor closed the control connection (restarted or stopped?)";

    public async Task StopAsync()
    {
        try { await control.DelOnionAsync(serviceId).WaitAsync(TimeSpan.FromSeconds(5)); }
        catch (Exception e) when (e is IOException or TimeoutException or TorControlException) { }
        await control.DisposeAsync();
    }

    public Task AbandonAsync() => control.DisposeAsync().AsTask();

    public ValueTask DisposeAsync() => control.DisposeAsync();
}
