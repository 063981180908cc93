using System.CommandLine;
using System.Net.Sockets;
using OnionDrop.Pull;
using OnionDrop.Storage;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop pull --stdio`: the SSH forced command on the server (docs/pull-protocol.md). Speaks the pull
/// protocol on stdin/stdout for one journalist. While the daemon runs (it holds daemon.lock) the session is
/// relayed to its DATA/pull.sock, so the daemon stays the catalog's only writer; when it is stopped, the
/// store is opened and served directly.
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
                using (store) await new PullServer(store!, journalist).RunAsync(stdin, stdout, ct);
                return 0;
            }
            catch (UnauthorizedAccessException e) { return Fail($"{options.DataDir}: {e.Message} (pull runs as the daemon's user)", 1); }
            catch (ArgumentException e) { return Fail("retention settings: " + e.Message, 2); }
            catch (Exception e) when (e is IOException or SocketException or LiteDB.LiteException) { return Fail(e.Message, 1); }
        });
        return command;
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
            try { return (SealedBlobStore.Open(options.DataDir, options.Retention.ToStoreOptions()), null); }
            catch (StoreLockedException) { }
            try { return (null, await PullRelay.ConnectAsync(socket, ct)); }
            catch (SocketException e) when (attempt >= 20)
            {
                if (File.Exists(socket)) throw new IOException($"the daemon holds {options.DataDir} but {socket} does not answer: {e.Message}");
                if (clock.Elapsed > waitForOther)
                    throw new IOException($"{options.DataDir} stayed in use by another oniondrop process for {waitForOther.TotalMinutes:0} min, and no daemon answers (a pull served while the daemon is stopped?)");
                // ssh passes this on to fetch, which shows it: the journalist knows why nothing happens yet.
                if (attempt == 20) Console.Error.WriteLine("oniondrop pull: another pull is being served while the daemon is stopped; waiting for it to end");
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
}
