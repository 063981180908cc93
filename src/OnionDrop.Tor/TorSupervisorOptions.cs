namespace OnionDrop.Tor;

/// <summary>Launch our own tor, or use the system's tor through its control socket.</summary>
public enum TorSupervisorMode { Launch, System }

/// <summary>
/// The supervisor's settings. The daemon fills the mode and paths from its OnionDropOptions (Daemon/Tor/TorSetup.cs);
/// the timings are no setting of the daemon's and keep their defaults there: the tests shorten them.
/// </summary>
public sealed class TorSupervisorOptions
{
    public TorSupervisorMode Mode { get; set; } = TorSupervisorMode.Launch;

    /// <summary>The daemon's data directory (tor/ and onion-service.key live in it; web.sock too unless <see cref="WebSocket"/> says otherwise).</summary>
    public string DataDir { get; set; } = "/var/lib/oniondrop";

    public string TorPath { get; set; } = "tor";

    /// <summary>Path of the torrc template; null or empty means the one shipped with the daemon.</summary>
    public string? TorrcTemplate { get; set; }

    public List<string> TorExtraConfig { get; set; } = [];

    /// <summary>System mode: the system tor's control socket.</summary>
    public string SystemTorControlSocket { get; set; } = "/run/tor/control";

    /// <summary>Report bootstrap as stuck (with tor's last warning) when it makes no progress this long.</summary>
    public TimeSpan BootstrapStuckAfter { get; set; } = TimeSpan.FromMinutes(3);

    /// <summary>First restart delay after an unexpected exit; doubles up to <see cref="MaxRestartDelay"/>.</summary>
    public TimeSpan RestartDelay { get; set; } = TimeSpan.FromSeconds(1);

    public TimeSpan MaxRestartDelay { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// A tor that leaves a control question unanswered this long is stopped (SIGSTOP) or hung: its process and its
    /// connection are still there, but it serves no one. It is killed and started again (System mode: reconnected).
    /// </summary>
    public TimeSpan UnresponsiveAfter { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long setting up a control connection may take: in System mode connecting, authenticating and ADD_ONION, in
    /// both modes the SETEVENTS and GETINFO after (the launched tor's own start is bounded by TorProcess). A tor that is
    /// stopped (SIGSTOP) or hung accepts the connection (the kernel does) and then answers nothing: unbounded, a start
    /// waited until systemd's start timeout, and a reconnect for as long as tor stayed so.
    /// </summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The web server's Unix socket, the onion service's target; DATA/web.sock unless set.</summary>
    public string WebSocket { get => _webSocket ?? Path.Combine(DataDir, TorrcValues.WebSocketName); set => _webSocket = value; }
    private string? _webSocket;

    /// <summary>
    /// The group the web socket is shared with (mode 0660), so that a tor running as another user can reach it
    /// (System mode with Debian's tor@default: debian-tor); null: the socket is the daemon's user's only (0600).
    /// </summary>
    public int? WebSocketGroupId { get; set; }

    public string OnionServiceKeyFile => Path.Combine(DataDir, "onion-service.key");
}
