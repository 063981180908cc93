using System.CommandLine;
using System.Net.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using OnionDrop.Daemon.Hosting;
using OnionDrop.Daemon.Web;
using OnionDrop.Tor;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop serve`: layers the configuration (see <see cref="OnionDropConfiguration"/>), checks it, and runs
/// the daemon until SIGTERM/SIGINT. A bad configuration exits 2 with one line naming the bad entry.
/// </summary>
public static class ServeCommand
{
    public const int ExitBadConfig = 2;
    public const int ExitFailed = 1;

    public static Command Create()
    {
        var dataDir = new Option<string>("--data-dir") { Description = "Data directory (catalog, sealed blobs, sockets, status). Default /var/lib/oniondrop", HelpName = "DIR" };
        var recipients = new Option<string[]>("--recipient") { Description = "A journalist's public key (odpk1...); repeat for several. Replaces the config file's list", HelpName = "PUBKEY" };
        var listen = new Option<string>("--listen") { Description = "Also listen on a loopback address, for local trials and tests", HelpName = "127.0.0.1:PORT" };
        var tor = new Option<string>("--tor") { Description = "launch: run our own tor (default); system: use the system tor's control socket; none: loopback only", HelpName = "launch|system|none" };
        tor.AcceptOnlyFromAmong("launch", "system", "none");
        var config = new Option<string>("--config") { Description = $"JSON config file (section \"OnionDrop\"). Default ${OnionDropConfiguration.ConfigFileVariable}, else {OnionDropConfiguration.DefaultConfigFile} if present", HelpName = "FILE" };

        var check = new Option<bool>("--check")
        {
            Description = "Only check the configuration as serve would before it starts (exit 0, or 2 with the reason); starts nothing. " +
                          "Run it with a new build before restarting the daemon",
        };

        var command = new Command("serve", "Run the drop box daemon: tor, the onion service's form, sealing, the pull socket, the status file.\n" +
            "Each flag also has a config-file form (\"OnionDrop\": { \"DataDir\": ... }) and an environment form (ONIONDROP_DATA_DIR, ...); flags win over environment, environment over file.")
        {
            dataDir, recipients, listen, tor, config, check,
        };
        command.SetAction(async (parse, ct) =>
        {
            OnionDropConfiguration.Loaded loaded;
            try
            {
                loaded = OnionDropConfiguration.Load(parse.GetValue(config),
                    new(parse.GetValue(dataDir), parse.GetValue(recipients), parse.GetValue(listen), parse.GetValue(tor)));
                // The daemon validates again on start; checking here keeps a bad config to one line, before any logging starts.
                var failures = new OnionDropOptionsValidator().Validate(null, loaded.Options());
                if (failures.Failed) throw new ConfigurationError(string.Join("; ", failures.Failures ?? []));
            }
            catch (ConfigurationError e)
            {
                return Fail(ExitBadConfig, "bad configuration: " + e.Message);
            }
            if (DataDirectoryProblem(loaded.Options().DataDir) is { } dataDirProblem) return Fail(ExitBadConfig, dataDirProblem);
            if (parse.GetValue(check))
            {
                // The listen port is not looked at: the daemon still running holds it.
                Console.Out.WriteLine("oniondrop serve: the configuration is fine");
                return 0;
            }
            if (ListenAddressTaken(loaded.Options().Listen) is { } taken) return Fail(ExitFailed, taken);

            try
            {
                await using var app = DaemonHost.Build(loaded.Configuration);
                // A part of the daemon that failed stops the host (it has logged why): that is no clean stop, and
                // must not exit 0, or systemd's Restart=on-failure would leave the drop box down. (Taken before
                // RunAsync, which disposes the services when it returns; the host starts these same instances.)
                var parts = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
                var stopping = app.Lifetime.ApplicationStopping;   // taken now too: the services are gone after RunAsync
                BackgroundService? Failed() => parts.FirstOrDefault(s => s.ExecuteTask is { IsFaulted: true });
                try { await app.RunAsync(); }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested && Failed() is null)
                {
                    // SIGTERM (systemctl stop) while tor was still starting: a stop as asked, not a failure to report as one.
                    // (A part that failed stops the host the same way: that one is reported below.)
                    Console.Error.WriteLine("oniondrop serve: stopped while starting (before tor was ready)");
                    return 0;
                }
                catch (OperationCanceledException) when (Failed() is not null) { }
                var failed = Failed();
                if (failed is not null && DataDirectoryGone(loaded.Options().DataDir) is { } gone) return Fail(ExitFailed, gone);
                return failed is null ? 0 : Fail(ExitFailed, $"{failed.GetType().Name} failed: {FirstLine(failed.ExecuteTask!.Exception!)}");
            }
            catch (OptionsValidationException e)
            {
                return Fail(ExitBadConfig, "bad configuration: " + string.Join("; ", e.Failures));
            }
            catch (TorStartException e) when (e.BadConfiguration)
            {
                // No tor binary, or a torrc tor refuses: restarting cannot help (the host left out its stack trace).
                return Fail(ExitBadConfig, "bad configuration: " + FirstLine(e));
            }
            catch (Exception e) when (Unwrap(e) is OnionDrop.Storage.CatalogMissingException or OnionDrop.Storage.CatalogDamagedException)
            {
                // The operator must act (docs/storage.md, "Recovery"): a restart every RestartSec would only repeat this line.
                return Fail(ExitBadConfig, FirstLine(e));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // The host has logged the details for the operator; the terminal gets the one line.
                return Fail(ExitFailed, DataDirectoryGone(loaded.Options().DataDir) ?? FirstLine(e));
            }
        });
        return command;
    }

    /// <summary>
    /// A data directory this user may not use, said before anything is made in it. One of another user (root
    /// serving the service's directory, say) would get root's tor key, torrc and catalog, which the service's user
    /// then cannot open: it would fail at every start. One that cannot be made or written fails at once anyway.
    /// Exit 2 either way: systemd restarting it would not help.
    /// </summary>
    private static string? DataDirectoryProblem(string dataDir)
    {
        var me = UnixAccount.UserName(UnixAccess.EffectiveUid);
        if (DataDirectoryOptions.OtherOwner(dataDir) is { } owner)
        {
            var user = UnixAccount.UserName(owner);
            // root serving the service's directory: run as its owner. The service's user on a directory root put back
            // from a backup (or copied with numeric ids): give it back, never run the daemon as root.
            if (UnixAccess.EffectiveUid != 0 && owner == 0) return GiveItBack("DataDir " + dataDir, owner);
            return $"DataDir {dataDir} belongs to uid {owner} ({user}), not to {me}: run serve as that user " +
                   $"(e.g. sudo -u {user} oniondrop serve ..., or systemctl start oniondrop), so that what it makes there stays {user}'s" +
                   (UnixAccess.EffectiveUid == 0 ? "" : $"; or, if it is this daemon's (put back from a backup), give it back: sudo chown -R {me}: {dataDir}");
        }
        // The directory given back but not what is in it (chown without -R): the daemon fails on that part at every start.
        if (UnixAccess.EffectiveUid != 0 && ForeignPart(dataDir) is { } part) return GiveItBack(part.Path, part.Owner);
        try
        {
            Directory.CreateDirectory(dataDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            if (!UnixAccess.MayWrite(dataDir)) throw new UnauthorizedAccessException($"{dataDir} is {UnixAccess.Describe(UnixAccess.Of(dataDir))}, read-only to it");
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"DataDir {dataDir} cannot be made or written by the user {me} (uid {UnixAccess.EffectiveUid}): {e.Message.TrimEnd('.')}. " +
                   $"Make it a directory {me} owns (e.g. sudo install -d -m 0700 -o {me} {dataDir}; under the systemd unit also ReadWritePaths=), or choose another DataDir";
        }

        // What restoring as root (cp -r, tar --numeric-owner, a chown without -R) leaves: give the whole directory back.
        string GiveItBack(string what, int owner) =>
            $"{what} belongs to uid {owner} ({UnixAccount.UserName(owner)}), not to {me}: if it is this daemon's " +
            $"(put back from a backup, copied by root), give it back: sudo chown -R {me}: {dataDir}";
    }

    /// <summary>The first entry directly in <paramref name="dataDir"/> (catalog.db, blobs/, tor/...) another user owns, if any.</summary>
    private static (string Path, int Owner)? ForeignPart(string dataDir)
    {
        try
        {
            foreach (var entry in Directory.EnumerateFileSystemEntries(dataDir))
            {
                var owner = UnixAccess.Of(entry).Uid;
                if (owner != UnixAccess.EffectiveUid) return (entry, owner);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }   // missing or unreadable: said below
        return null;
    }

    /// <summary>
    /// The data directory deleted (or its file system unmounted) under the running daemon: each part then fails in
    /// .NET's words ("Could not find the drive '/var/lib/oniondrop'. The drive might not be ready or might not be
    /// mapped."), which say neither what happened nor what it means.
    /// </summary>
    private static string? DataDirectoryGone(string dataDir) => Directory.Exists(dataDir) ? null :
        $"the data directory {dataDir} disappeared while the daemon ran (deleted, or its file system unmounted): stopped. " +
        "The submissions it held are gone unless it is put back from a backup; started again, the daemon makes a new, empty one";

    /// <summary>
    /// A loopback port already in use, said in one line before the host starts (which would log a long trace
    /// first). Only a quick look: the host's own bind still decides.
    /// </summary>
    private static string? ListenAddressTaken(string? listen)
    {
        if (listen is null || !LoopbackEndpoint.TryParse(listen, out var endpoint, out _) || endpoint.Port == 0) return null;
        try
        {
            var probe = new TcpListener(endpoint);
            probe.Start();
            probe.Stop();
            return null;
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            return $"{listen} is already in use (another oniondrop serve, or another program): choose another --listen port";
        }
    }

    private static int Fail(int code, string message)
    {
        Console.Error.WriteLine("oniondrop serve: " + message);
        return code;
    }

    internal static string FirstLine(Exception e) => Unwrap(e).Message.Split('\n')[0].Trim();

    private static Exception Unwrap(Exception e)
    {
        while (e is AggregateException { InnerExceptions.Count: 1 } a) e = a.InnerExceptions[0];
        return e;
    }
}
