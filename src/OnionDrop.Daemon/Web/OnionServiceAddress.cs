using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Tor;

namespace OnionDrop.Daemon.Web;

/// <summary>
/// The onion service's own name, for the Host allow-list. <see cref="Publish"/> is called by the tor setup
/// (Tor/TorSetup.cs, TorHostedService) on every change of the supervisor's state that names the service
/// (ADD_ONION's ServiceID or the HiddenServiceDir's hostname file); until then the launched tor's hostname
/// file is read if it exists.
/// </summary>
public sealed class OnionServiceAddress(IOptions<OnionDropOptions> options)
{
    private volatile string? _host;

    /// <summary>"&lt;56 base32 chars&gt;.onion", or null while unknown.</summary>
    public string? Host => _host ??= ReadHostnameFile();

    /// <param name="onion">A v3 service id, with or without ".onion".</param>
    public void Publish(string onion)
    {
        var host = onion.Trim().ToLowerInvariant();
        if (!host.EndsWith(".onion", StringComparison.Ordinal)) host += ".onion";
        if (!IsV3OnionName(host)) throw new ArgumentException("not a v3 onion name", nameof(onion));
        _host = host;
    }

    /// <summary>True for a v3 name with its ".onion" (checksum and version checked: <see cref="OnionAddress"/>).</summary>
    public static bool IsV3OnionName(string host) =>
        host.EndsWith(".onion", StringComparison.OrdinalIgnoreCase) && OnionAddress.PublicKeyOf(host) is not null;

    private string? ReadHostnameFile()
    {
        try
        {
            var file = new TorrcValues(options.Value.DataDir, Environment.ProcessId).HostnameFile;
            if (!File.Exists(file)) return null;
            var host = File.ReadAllText(file).Trim().ToLowerInvariant();
            return IsV3OnionName(host) ? host : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }
}
