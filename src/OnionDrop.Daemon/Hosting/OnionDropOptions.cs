namespace OnionDrop.Daemon.Hosting;

/// <summary>How tor is run for the onion service.</summary>
public enum TorMode
{
    /// <summary>The daemon starts and supervises its own tor (default).</summary>
    Launch,
    /// <summary>Use the system's tor service through its control socket and ADD_ONION.</summary>
    System,
    /// <summary>No tor: only the loopback listener, for local trials and benchmarks.</summary>
    None,
}

/// <summary>
/// The daemon's settings, layered from the config file, ONIONDROP_* environment variables and the command line
/// (section "OnionDrop"; OnionDrop.Cli's OnionDropConfiguration), validated at start-up.
/// </summary>
public sealed class OnionDropOptions
{
    public const string Section = "OnionDrop";

    public string DataDir { get; set; } = "/var/lib/oniondrop";

    /// <summary>Journalists' public keys (odpk1...). At least one; each must parse.</summary>
    public List<string> Recipients { get; set; } = [];

    /// <summary>Optional loopback TCP listener, "127.0.0.1:PORT" (any of 127.0.0.0/8), "[::1]:PORT" or "localhost:PORT". Never another address.</summary>
    public string? Listen { get; set; }

    public TorMode Tor { get; set; } = TorMode.Launch;

    /// <summary>Path of the tor binary (Launch mode).</summary>
    public string TorPath { get; set; } = "tor";

    /// <summary>Path of torrc.template (Launch mode); empty means the one shipped beside the executable.</summary>
    public string? TorrcTemplate { get; set; }

    /// <summary>Extra torrc lines appended in Launch mode (e.g. to join a private test network).</summary>
    public List<string> TorExtraConfig { get; set; } = [];

    /// <summary>Control socket of the system tor (System mode).</summary>
    public string SystemTorControlSocket { get; set; } = "/run/tor/control";

    /// <summary>
    /// Where web.sock (tor's target) is made; empty means the data directory. A tor running as another user
    /// (System mode with Debian's tor@default) needs a directory of its own, e.g. /run/oniondrop, shared with
    /// <see cref="WebSocketGroup"/>: the data directory itself stays 0700.
    /// </summary>
    public string? WebSocketDirectory { get; set; }

    /// <summary>
    /// A group (e.g. debian-tor) the daemon's user is in: WebSocketDirectory becomes 2710 (setgid) and web.sock 0660 with
    /// this group, so its members may connect and do nothing else. Empty: 0700 and 0600, the daemon's user only.
    /// </summary>
    public string? WebSocketGroup { get; set; }

    public string NewsroomName { get; set; } = "OnionDrop";

    /// <summary>Optional welcome text shown above the form (plain text, no HTML).</summary>
    public string? WelcomeText { get; set; }

    public long MaxSubmissionBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    public int MaxFiles { get; set; } = 100;

    public int MaxMessageChars { get; set; } = 100_000;

    /// <summary>
    /// Uploads received at once; one more gets a "busy" page (503) and stores nothing. Each holds 0.5 to 3 MiB while
    /// it streams, so a flood of slow uploads could otherwise exhaust the server's memory and kill every upload in
    /// progress.
    /// </summary>
    public int MaxConcurrentUploads { get; set; } = 64;

    /// <summary>An upload that sends nothing for this long is dropped (and stores nothing); a slow one that keeps moving is not.</summary>
    public TimeSpan UploadIdleTimeout { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>When pulled submissions are deleted and how long unfetched ones may wait (Storage/RetentionOptions.cs).</summary>
    public OnionDrop.Daemon.Storage.RetentionOptions Retention { get; set; } = new();
}
