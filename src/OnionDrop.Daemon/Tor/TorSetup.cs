using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Hosting.Systemd;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Daemon.Web;
using OnionDrop.Tor;

namespace OnionDrop.Daemon.Tor;

/// <summary>
/// Registers the <see cref="TorSupervisor"/> (also as <see cref="ITorStatus"/>) per OnionDrop:Tor:
/// Launch runs our own tor from torrc.template, System uses the system tor's control socket, None runs no tor.
/// </summary>
public static class TorSetup
{
    public static IServiceCollection AddOnionDropTor(this IServiceCollection services)
    {
        services.AddSingleton(sp => SupervisorOptions(sp.GetRequiredService<IOptions<OnionDropOptions>>().Value));
        services.AddSingleton<TorSupervisor>();
        services.AddSingleton<ITorStatus>(sp => sp.GetRequiredService<TorSupervisor>());
        services.AddHostedService<TorHostedService>();
        return services;
    }

    /// <summary>
    /// What is wrong with the torrc launch mode would write (the template, or a TorExtraConfig line), in one line;
    /// null when nothing. The same check runs again when tor starts.
    /// </summary>
    public static string? TorrcProblem(OnionDropOptions o)
    {
        // Not SupervisorOptions(o): it also looks up WebSocketGroup, which the validator checks on its own.
        var templatePath = string.IsNullOrWhiteSpace(o.TorrcTemplate) ? null : Path.GetFullPath(o.TorrcTemplate);
        try
        {
            var template = templatePath is null ? TorrcTemplate.LoadDefault() : File.ReadAllText(templatePath);
            var values = new TorrcValues(Path.GetFullPath(o.DataDir), Environment.ProcessId) { WebSocket = Path.GetFullPath(WebListeners.SocketPath(o)) };
            TorrcTemplate.Render(template, values, o.TorExtraConfig, templatePath ?? TorrcTemplate.FileName);
            return null;
        }
        catch (TorConfigurationException e) { return e.Message; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return $"TorrcTemplate: cannot read {templatePath}: {e.Message}"; }
    }

    /// <summary>What the system tor would refuse in the web socket's path, which it gets in ADD_ONION, in one line; null when nothing.</summary>
    public static string? SystemTorProblem(OnionDropOptions o)
    {
        try
        {
            TorrcTemplate.CheckWebSocketPath(Path.GetFullPath(o.DataDir), Path.GetFullPath(WebListeners.SocketPath(o)), addOnion: true);
            return null;
        }
        catch (TorConfigurationException e) { return e.Message; }
    }

    public static TorSupervisorOptions SupervisorOptions(OnionDropOptions o) => new()
    {
        Mode = o.Tor == TorMode.System ? TorSupervisorMode.System : TorSupervisorMode.Launch,
        DataDir = Path.GetFullPath(o.DataDir),
        TorPath = o.TorPath,
        TorrcTemplate = string.IsNullOrWhiteSpace(o.TorrcTemplate) ? null : Path.GetFullPath(o.TorrcTemplate),
        TorExtraConfig = o.TorExtraConfig,
        SystemTorControlSocket = o.SystemTorControlSocket,
        WebSocket = Path.GetFullPath(WebListeners.SocketPath(o)),
        WebSocketGroupId = WebListeners.SocketGroupId(o),
    };
}

/// <summary>
/// Runs the supervisor unless OnionDrop:Tor is None, and mirrors its state into systemd's status text
/// (STATUS=, shown by `systemctl status`). READY=1 is sent by the host once every hosted service, this
/// one included, has started: so only after tor runs and the web server listens.
/// </summary>
internal sealed class TorHostedService(IOptions<OnionDropOptions> options, TorSupervisor supervisor, ILogger<TorHostedService> logger,
    IServiceProvider services, OnionServiceAddress address) : IHostedService
{
    private readonly bool _enabled = options.Value.Tor != TorMode.None;
    private readonly ISystemdNotifier? _systemd = services.GetService<ISystemdNotifier>() is { IsEnabled: true } n ? n : null;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!_enabled)
        {
            logger.LogInformation("Tor disabled (OnionDrop:Tor = None): only the loopback listener serves the form");
            return;
        }
        if (_systemd is not null) supervisor.Changed += Notify;
        // The web's Host allow-list accepts our own onion name only, once tor has told us what it is.
        supervisor.Changed += PublishAddress;
        // tor is pointed at web.sock before Kestrel binds it: its directory must be ready (and checkable) first.
        WebListeners.PrepareSocketDirectory(options.Value);
        await supervisor.StartAsync(cancellationToken);
    }

    private void PublishAddress(TorState state)
    {
        if (state.OnionAddress is { } onion) address.Publish(onion);
    }

    private void Notify(TorState state) => _systemd?.Notify(new ServiceState("STATUS=" + state.Describe()));

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (!_enabled) return;
        await supervisor.StopAsync(cancellationToken);
        supervisor.Changed -= Notify;
        supervisor.Changed -= PublishAddress;
    }
}
