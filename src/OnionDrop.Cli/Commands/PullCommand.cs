using System.CommandLine;
using System.Net.Sockets;
using Microsoft.Win32.SafeHandles;
using OnionDrop.Pull;
using OnionDrop.Storage;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop pull --stdio`: the SSH forced command on the server (docs/pull-protocol.md). Speaks the pull
/// protocol on stdin/stdout for one journalist. While the daemon runs (it holds daemon.lock) the session is
/// relayed to its DATA/pull.sock, so the daemon stays the catalog's only writer; when it is stopped, the
/// store is opened and served directly, until the session ends or the daemon starts (the drop box comes first).
/// </summary>
public static class PullCommand
{
    public static Command Create()
    {
        var stdio = new Option<bool>("--stdio") { Description = "Speak the pull protocol on stdin/stdout (required: this is an SSH forced command)" };
        var data = new DataDirectoryOptions("the data directory and retention settings");
        var name = new Option<string>("--as") { Description = "The journalist this key belongs to, for per-journalist acknowledgements (default: the user name)", HelpName = "NAME" };
        var command = new Command("pull", "Serve sealed submissions to `oniondrop fetch` over SSH. Use as a forced command in /etc/oniondrop/authorized_keys:\n" +
            "  restrict,command=\"/usr/local/bin/oniondrop pull --stdio --config /etc/oniondrop/oniondrop.json --as alice\" ssh-ed25519 AAAA... alice")
        {
            stdio, data.DataDir, data.Config, name,
        };
        command.SetAction(async (parse, ct) =>
        {
            if (ForcedCommand.Refusal(Environment.GetEnvironmentVariable(ForcedCommand.Variable)) is { } refusal) return Fail(refusal, 126);
            if (!parse.GetValue(stdio)) return Fail("--stdio is required (this command is the server side of `oniondrop fetch`, run by sshd)", 2);
            var journalist = parse.GetValue(name) ?? Environment.UserName;
            if (!SealedBlobStoreOptions.IsValidJournalistName(journalist)) return Fail($"--as '{journalist}': a name is 1-64 of a-z A-Z 0-9 . _ -", 2);

            OnionDrop.Daemon.Hosting.OnionDropOptions options;
            try { options = data.Load(parse); }
            catch (ConfigurationError e) { return Fail(e.Message, 2); }
            if (!Directory.Exists(options.DataDir)) return Fail($"data directory {options.DataDir} not found", 2);
            // Run by sshd outside the unit's sandbox: give up what it does not need before reading anything (PullSandbox).
            try { PullSandbox.Enter(options.DataDir); }
            catch (InvalidOperationException e) { return Fail("could not restrict itself, so serves nothing: " + e.Message, 1); }

            using var stdin = Console.OpenStandardInput();
            using var stdout = Console.OpenStandardOutput();
            try
            {
                var (store, relay) = await OpenOrConnectAsync(options, ct);
                if (relay is not null)
                {
                    using (relay) await PullRelay.RunAsync(relay, journalist, stdin, stdout, ct);
                    return 0;
                }
                using (store)
                {
                    using var session = CancellationTokenSource.CreateLinkedTokenSource(ct);
                    var watch = StepAsideForDaemonAsync(options.DataDir, session);
                    try
                    {
                        await new PullServer(store!, journalist).RunAsync(stdin, stdout, session.Token);
                        return 0;
                    }
                    catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
                    finally
                    {
                        await session.CancelAsync();
                        await watch;
                    }
                }
                // Cut where the session stood: a blob cut off is not acknowledged and fetch removes its part, and what the
                // store recorded it holds. The store is let go (above) before this line: ssh passes it on, fetch shows it.
                return FailPast("the drop box's daemon started and takes the store over: this pull stopped; " +
                            "nothing unacknowledged was deleted: run fetch again to resume", 3);
            }
            catch (UnauthorizedAccessException e) { return Fail($"{options.DataDir}: {e.Message} (pull runs as the daemon's user)", 1); }
            catch (ArgumentException e) { return Fail("retention settings: " + e.Message, 2); }
            catch (Exception e) when (e is IOException or SocketException or LiteDB.LiteException) { return Fail(e.Message, 1); }
        });
        return command;
    }

    /// <summary>
    /// Ends <paramref name="session"/> as soon as the daemon, starting, waits for the store (it holds daemon.starting):
    /// the sources' form must not stay down for as long as a journalist's pull lasts. A blob in flight is cut off, not
    /// finished: one may take minutes over Tor, and the daemon gives up on the store after 30 s.
    /// </summary>
    private static async Task StepAsideForDaemonAsync(string dataDir, CancellationTokenSource session)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(250));
        try
        {
            while (await timer.WaitForNextTickAsync(session.Token))
                if (DataDirectoryLock.IsWanted(dataDir)) await session.CancelAsync();
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>
    /// The store, opened here while the daemon is stopped, or a connection to the running daemon's pull.sock. The
    /// daemon may be starting, so pull.sock gets a moment. Without a pull.sock, daemon.lock is held by another pull
    /// served directly (two journalists fetching while the daemon is stopped): wait for it to end, as long as a session
    /// may idle, rather than blame a daemon that is not running.
    /// </summary>
    private static async Task<(SealedBlobStore? Store, Socket? Relay)> OpenOrConnectAsync(OnionDrop.Daemon.Hosting.OnionDropOptions options, CancellationToken ct)
    {
        var socket = Path.Combine(options.DataDir, PullSocketListener.FileName);
        var waitForOther = PullServer.DefaultIdleTimeout + TimeSpan.FromMinutes(1);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var attempt = 1; ; attempt++)
        {
            // A daemon starting (waiting for the store) is let have it: this pull then relays to it.
            var daemonStarting = DataDirectoryLock.IsWanted(options.DataDir);
            if (!daemonStarting)
                try
                {
                    var store = SealedBlobStore.Open(options.DataDir, options.Retention.ToStoreOptions() with { Holder = StoreHolder.Pull });
                    // Holding daemon.lock, this pull holds pull.sock's name too: one there is a killed daemon's, and left
                    // there it would have the next pull blame a daemon that is not running, not wait for this one.
                    try { File.Delete(socket); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
                    return (store, null);
                }
                catch (StoreLockedException) { }
            try { return (null, await PullRelay.ConnectAsync(socket, ct)); }
            catch (SocketException e) when (attempt >= 20)
            {
                if (File.Exists(socket)) throw new IOException($"the daemon holds {options.DataDir} but {socket} does not answer: {e.Message}");
                if (clock.Elapsed > waitForOther)
                    throw new IOException($"{options.DataDir} stayed in use by another oniondrop process for {waitForOther.TotalMinutes:0} min, and no daemon answers (a pull served while the daemon is stopped?)");
                // ssh passes this on to fetch, which shows it: the journalist knows why nothing happens yet.
                if (attempt == 20)
                    Console.Error.WriteLine(daemonStarting ? "oniondrop pull: the drop box's daemon is starting; waiting for it"
                        : "oniondrop pull: another pull is being served while the daemon is stopped; waiting for it to end");
            }
            catch (SocketException) { }
            await Task.Delay(250, ct);
        }
    }

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine("oniondrop pull: " + message);
        return code;
    }

    /// <summary>
    /// <see cref="Fail"/> past a write to the journalist that may still be stuck (one who reads nothing): the console's
    /// streams share one lock, which that write holds, so Console.Error would wait for it. Returning ends the write.
    /// </summary>
    private static int FailPast(string message, int code)
    {
        using var stderr = new FileStream(new SafeFileHandle(2, ownsHandle: false), FileAccess.Write, 0);
        stderr.Write(System.Text.Encoding.UTF8.GetBytes("oniondrop pull: " + message + "\n"));
        return code;
    }
}
