using System.CommandLine;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Tor;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `--data-dir DIR` and `--config FILE`, as the commands that work on a running or stopped daemon's data
/// (pull, status, compact, recover) take them: settings come from the config file and environment as `serve`
/// reads them, and --data-dir overrides theirs.
/// </summary>
internal sealed class DataDirectoryOptions(string configTakes = "the data directory")
{
    public Option<string> DataDir { get; } = new("--data-dir")
    {
        Description = "The daemon's data directory. Default: from the config file and environment, as `serve` reads them",
        HelpName = "DIR",
    };

    public Option<string> Config { get; } = new("--config") { Description = $"Config file to take {configTakes} from", HelpName = "FILE" };

    /// <summary>The daemon's settings; throws <see cref="ConfigurationError"/> with one line naming the bad entry.</summary>
    public OnionDropOptions Load(ParseResult parse) =>
        OnionDropConfiguration.Load(parse.GetValue(Config), new(DataDir: parse.GetValue(DataDir))).Options();

    /// <summary>
    /// The uid owning <paramref name="dataDir"/> when that is not the effective user, else null (also when it is not
    /// there yet or cannot be read: opening it then says why). A command that writes there (serve, compact, recover)
    /// as another user, root above all, would leave files the daemon's user can no longer open: those refuse.
    /// </summary>
    public static int? OtherOwner(string dataDir)
    {
        int owner;
        try { owner = UnixAccess.Of(dataDir).Uid; }
        catch (IOException) { return null; }
        return owner == UnixAccess.EffectiveUid ? null : owner;
    }
}
