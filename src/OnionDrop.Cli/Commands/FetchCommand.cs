using System.CommandLine;
using System.Diagnostics;
using OnionDrop.Files;
using OnionDrop.Pull;
using OnionDrop.Sealing;
using OnionDrop.Storage;

namespace OnionDrop.Cli.Commands;

/// <summary>
/// `oniondrop fetch [user@]host [-o DIR]`: runs the system's `ssh` (so ~/.ssh/config, ProxyJump, ProxyCommand
/// and torsocks all apply) to the server's forced command `oniondrop pull --stdio`, and collects every waiting
/// sealed submission into DIR as ID.sealed: verified, fsynced, then acknowledged. Safe to interrupt and rerun.
/// </summary>
public static class FetchCommand
{
    public static Command Create()
    {
        var host = new Argument<string?>("HOST") { Description = "[user@]host of the drop box, as you would give it to ssh (a Host alias from ~/.ssh/config works)", Arity = ArgumentArity.ZeroOrOne };
        var output = new Option<string>("--output", "-o") { Description = "Directory for the ID.sealed files", HelpName = "DIR", DefaultValueFactory = _ => "." };
        var port = new Option<int?>("--port", "-p") { Description = "SSH port (else ssh's own default or ~/.ssh/config)", HelpName = "PORT" };
        var sshArgs = new Option<string[]>("--ssh-arg") { Description = "An extra argument for ssh, before the host (repeatable), e.g. --ssh-arg=-i --ssh-arg=~/.ssh/drop", HelpName = "ARG", AllowMultipleArgumentsPerToken = false };
        var via = new Option<string?>("--via") { Description = "Run COMMAND (with /bin/sh -c) instead of ssh, e.g. 'oniondrop pull --stdio --data-dir DIR' or 'torsocks ssh -T oniondrop@drop.onion'", HelpName = "COMMAND" };
        var open = new Option<bool>("--open") { Description = "Also open each blob as it arrives, into a folder beside its .sealed file (needs --key): for the machine that holds the secret key" };
        var keyFile = new Option<string?>("--key", "-k") { Description = "Your secret key file, with --open", HelpName = "FILE" };
        var passphraseFile = new Option<string?>("--passphrase-file") { Description = "Passphrase of a protected key, for scripts (or ONIONDROP_PASSPHRASE)", HelpName = "FILE" };
        var idleTimeout = new Option<int>("--idle-timeout")
        {
            Description = "Give up when the server, once it has answered, sends nothing for SECONDS while fetch waits for it (a stalled connection); 0 waits for ever",
            HelpName = "SECONDS",
            DefaultValueFactory = _ => (int)PullClient.DefaultIdleTimeout.TotalSeconds,
        };
        var keepFree = new Option<string>("--keep-free")
        {
            Description = "Free space to leave on DIR's disk: a blob that would leave less stays on the server (so no server, and no flood of " +
                          "submissions, fills the disk). On a USB stick that carries only sealed files, 0 uses all of it",
            HelpName = "SIZE",
            DefaultValueFactory = _ => "1G",
        };
        var command = new Command("fetch", "Collect sealed submissions from the drop box over SSH. Nothing is deleted there before it is safely here.")
        {
            host, output, port, sshArgs, via, open, keyFile, passphraseFile, idleTimeout, keepFree,
        };
        command.SetAction(async (parse, ct) =>
        {
            var dir = Path.GetFullPath(parse.GetValue(output)!);
            var target = parse.GetValue(host);
            var viaCommand = parse.GetValue(via);
            if (target is null && viaCommand is null) return Fail("give the server as [user@]host (or --via COMMAND)", 2);
            if (target is not null && viaCommand is not null) return Fail("give either a host or --via, not both", 2);
            var idleSeconds = parse.GetValue(idleTimeout);
            if (idleSeconds < 0 || idleSeconds > MaxIdleSeconds)
                return Fail($"--idle-timeout must be 0 (no limit) or from 1 to {MaxIdleSeconds} seconds, not {idleSeconds}", 2);
            TimeSpan? idle = idleSeconds == 0 ? null : TimeSpan.FromSeconds(idleSeconds);
            if (ParseSize(parse.GetValue(keepFree)!) is not { } keepFreeBytes)
                return Fail($"--keep-free takes a size such as 0, 500M or 2G (K, M, G, T: KiB, MiB, GiB, TiB), not {parse.GetValue(keepFree)}", 2);

            JournalistKey? key = null;
            if (parse.GetValue(open))
            {
                var keyPath = parse.GetValue(keyFile);
                if (keyPath is null) return Fail("--open needs --key FILE", 2);
                key = SecretKeyFile.Load("fetch", keyPath, parse.GetValue(passphraseFile));
                if (key is null) return 2;
            }
            else if (parse.GetValue(keyFile) is not null) return Fail("--key is only used with --open", 2);

            // Made and tried before connecting, so that an unwritable DIR fails before anything is transferred.
            var madeDir = !Directory.Exists(dir);
            if (OutputDirectory.CannotWriteTo(dir) is { } why) return Fail($"{dir}: {why}", 2);
            // Only what --open writes is plaintext: sealed files may go anywhere.
            if (key is not null && OutputDirectory.KeepsNoModesWarning(dir) is { } exposed) Console.Error.WriteLine("oniondrop fetch: " + exposed);
            try
            {
                // Another fetch into DIR is refused before logging in anywhere (the fetch itself holds the lock throughout).
                using var probe = Posix.TryLockDirectory(dir) ?? throw new FetchDirectoryBusyException(dir);
            }
            catch (FetchDirectoryBusyException e) { return Fail(e.Message, 3); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return Fail($"{dir}: {e.Message}", 2); }

            var psi = viaCommand is not null
                ? new ProcessStartInfo("/bin/sh") { ArgumentList = { "-c", viaCommand } }
                : SshStartInfo(target!, parse.GetValue(port), parse.GetValue(sshArgs) ?? []);
            psi.RedirectStandardInput = psi.RedirectStandardOutput = true;
            // ssh's errors, and the server's own stderr that ssh passes on raw, are relayed without control characters
            // (TerminalText); ssh's prompts (passphrase, host key) use the terminal itself and are untouched.
            psi.RedirectStandardError = true;
            psi.UseShellExecute = false;
            // The key is loaded by now: the passphrase has no business in ssh's, a --via shell's or a ProxyCommand's
            // environment, where (unlike in this process, not dumpable) any process of the user could read it.
            psi.Environment.Remove(Passphrases.EnvironmentVariable);

            using (key)
                return await RunAsync(psi, dir, madeDir, key, idle, keepFreeBytes, ct);
        });
        return command;
    }

    /// <summary>The longest wait a timer takes (Task.Delay: 2^32 - 2 ms, about 49 days); longer crashed once connected.</summary>
    private const int MaxIdleSeconds = (int)((uint.MaxValue - 1) / 1000);

    private static ProcessStartInfo SshStartInfo(string target, int? port, string[] extra)
    {
        var psi = new ProcessStartInfo("ssh");
        psi.ArgumentList.Add("-T"); // no terminal: the channel carries binary frames
        if (port is { } p) { psi.ArgumentList.Add("-p"); psi.ArgumentList.Add(p.ToString()); }
        foreach (var a in extra) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--");
        psi.ArgumentList.Add(target);
        psi.ArgumentList.Add(PullProtocol.RemoteCommand);
        return psi;
    }

    /// <summary>"0", "500M", "2G": bytes, or KiB, MiB, GiB, TiB by the suffix; null if it is no such size.</summary>
    private static long? ParseSize(string text)
    {
        var t = text.Trim().ToUpperInvariant();
        var shift = t.EndsWith('K') ? 10 : t.EndsWith('M') ? 20 : t.EndsWith('G') ? 30 : t.EndsWith('T') ? 40 : 0;
        if (shift > 0) t = t[..^1];
        if (t.Length == 0 || !t.All(char.IsAsciiDigit) || !long.TryParse(t, out var n) || n > long.MaxValue >> shift) return null;
        return n << shift;
    }

    private static async Task<int> RunAsync(ProcessStartInfo psi, string dir, bool madeDir, JournalistKey? key, TimeSpan? idleTimeout, long keepFree, CancellationToken ct)
    {
        Process transport;
        try { transport = Process.Start(psi)!; }
        catch (System.ComponentModel.Win32Exception e) { return Fail($"cannot run {psi.FileName}: {e.Message}", 2); }
        using var _ = transport;
        var progress = new FetchProgressReport(dir);
        var relayed = TerminalText.RelayAsync(transport.StandardError, line =>
        {
            progress.Clear();
            Console.Error.WriteLine(line);
        });
        var opened = 0;
        var openProblems = new List<string>();
        var options = new FetchOptions
        {
            OutputDirectory = dir,
            Progress = progress.Report,
            IdleTimeout = idleTimeout,
            KeepFreeBytes = keepFree,
            Stored = key is null ? null : (path, _) =>
            {
                try
                {
                    using var blob = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
                    // One already here from an interrupted run may have been opened before the cut: then skipped.
                    if (!SubmissionOpener.Open(blob, key, dir, Path.GetFileName(path)).AlreadyOpened) opened++;
                }
                catch (Exception e)
                {
                    // The ciphertext itself arrived intact (hash checked): keep and acknowledge it, say why it did not open.
                    // Whatever the reason, a bug of ours included: one blob must not stop the fetch of the others.
                    openProblems.Add($"{Path.GetFileName(path)}: not opened: {e.Message.ReplaceLineEndings(" ")}");
                }
                return Task.CompletedTask;
            },
        };

        FetchResult result;
        try
        {
            result = await PullClient.FetchAsync(transport.StandardOutput.BaseStream, transport.StandardInput.BaseStream, options, ct);
            transport.StandardInput.Close();
            if (!transport.WaitForExit(10_000)) transport.Kill();
            await EndOfRelay(relayed);
        }
        catch (Exception e) when (e is PullProtocolException or IOException or UnauthorizedAccessException)
        {
            progress.Clear();
            // The whole tree: a stalled ProxyCommand, or the children of a --via shell, would otherwise stay behind.
            if (!transport.HasExited) transport.Kill(entireProcessTree: true);
            await transport.WaitForExitAsync(CancellationToken.None);
            await EndOfRelay(relayed); // its message, if any, is above ours
            if (e is PullNeverStartedException && madeDir) OutputDirectory.RemoveIfEmpty(dir); // a typo in the host leaves no empty folder behind
            var why = e switch
            {
                PullNeverStartedException => NeverStarted(psi.FileName, transport.ExitCode),
                PullIdleException idle => $"the server sent nothing for {idle.Limit.TotalSeconds:0} s (--idle-timeout) {progress.Stage}: " +
                                          "the connection stalled; nothing unacknowledged was deleted: run fetch again to resume, with a larger --idle-timeout if the link is only slow",
                PullConnectionLostException => $"connection lost ({psi.FileName} exited {transport.ExitCode}) {progress.Stage}; nothing unacknowledged was deleted: run fetch again to resume",
                // Here, not on the server: DIR made unwritable (or full) mid-way.
                FetchDirectoryBusyException => e.Message,
                UnauthorizedAccessException => $"permission denied writing into {dir} {progress.Stage}; nothing unacknowledged was deleted: run fetch again once you can write there",
                // Filled by something else since fetch checked its room (another program, another fetch onto the same stick).
                _ when WriteFailure.IsDiskFull(e) => $"{dir} is full (no space left on the disk) {progress.Stage}; nothing unacknowledged was deleted: " +
                                                     "make room there or fetch into another folder, then run fetch again to resume",
                IOException => $"cannot write into {dir} {progress.Stage} ({e.Message.ReplaceLineEndings(" ")}); nothing unacknowledged was deleted: run fetch again to resume",
                _ => e.Message,
            };
            return Fail(why, 3);
        }
        catch
        {
            // Anything else (a bug, Ctrl-C) still ends the transport: a ProxyCommand or a --via shell's children would stay.
            progress.Clear();
            if (!transport.HasExited) transport.Kill(entireProcessTree: true);
            throw;
        }
        progress.Clear();
        foreach (var p in result.Problems.Concat(openProblems)) Console.Error.WriteLine("oniondrop fetch: " + TerminalText.Printable(p));
        // One line for every blob the disk had no room for (a nearly full USB stick: it was a line per blob, in bytes).
        if (result.NoRoom > 0)
            Console.Error.WriteLine(TerminalText.Printable($"oniondrop fetch: {result.NoRoom} submission(s) ({ByteSize.Format(result.NoRoomBytes)}) left on the server: " +
                $"not enough room in {dir} ({ByteSize.Format(FreeBytes(dir))} free, and fetch keeps {ByteSize.Format(keepFree)} free: --keep-free); " +
                "make room there or fetch into another folder, then run fetch again"));
        // Acknowledged all the same, so no later fetch offers them again: the journalist must know the way back.
        if (openProblems.Count > 0)
            Console.Error.WriteLine(TerminalText.Printable($"oniondrop fetch: the {openProblems.Count} sealed file(s) not opened are kept in {dir}, and " +
                $"no later fetch retries them: once the cause is fixed, run oniondrop open --key FILE -o {dir} {Path.Combine(dir, "ID.sealed")}"));
        var summary = $"oniondrop fetch: {result.Received} new submission(s), {ByteSize.Format(result.BytesReceived)} in {progress.Elapsed.TotalSeconds:0.0} s " +
                      $"({ByteSize.Format((long)(result.BytesReceived / Math.Max(progress.Elapsed.TotalSeconds, 0.001)))}/s) into {dir}";
        if (result.AlreadyHeld > 0) summary += $"; {result.AlreadyHeld} already here";
        if (result.NotListed > 0) summary += $"; {result.NotListed} more waiting on the server: run fetch again";
        if (result.GoneMeanwhile > 0) summary += $"; {result.GoneMeanwhile} gone from the server meanwhile (fetched by a colleague, or past their keeping time)";
        if (key is not null) summary += $"; {opened} opened";
        Console.Error.WriteLine(summary);
        return result.Problems.Count + openProblems.Count + result.NoRoom == 0 ? 0 : 1;
    }

    private static long FreeBytes(string dir)
    {
        try { return new DriveInfo(dir).AvailableFreeSpace; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return 0; }
    }

    /// <summary>Waits for the transport's stderr to end, though not for a grandchild (a ProxyCommand) that keeps it open.</summary>
    private static async Task EndOfRelay(Task relayed)
    {
        try { await relayed.WaitAsync(TimeSpan.FromSeconds(2)); }
        catch (TimeoutException) { }
        catch (IOException) { }
    }

    /// <summary>Why no pull server answered, by the transport's exit code; nothing was fetched, so nothing to resume.</summary>
    private static string NeverStarted(string transport, int exitCode) => exitCode switch
    {
        255 when transport == "ssh" => "ssh could not connect or log in (exit 255; its message is above)",
        127 when transport == "ssh" => "the server did not start oniondrop pull (ssh exited 127: command not found there): " +
               "the operator should check the command= path in the key's authorized_keys line (e.g. /usr/local/bin/oniondrop)",
        127 => "the --via command did not start oniondrop pull (exit 127: command not found)",
        _ => $"the server ended before the pull began ({transport} exited {exitCode}; any message from it is above): nothing was fetched",
    };

    private static int Fail(string message, int code)
    {
        Console.Error.WriteLine("oniondrop fetch: " + message);
        return code;
    }

    /// <summary>Count, bytes and rate rewritten in place when stderr is a terminal (4 times a second); silent otherwise.</summary>
    private sealed class FetchProgressReport(string dir)
    {
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private readonly bool _terminal = !Console.IsErrorRedirected;
        private TimeSpan? _lastShown;   // null before the first line (TimeSpan.MinValue made the subtraction below overflow)
        private bool _shown;

        public int Done { get; private set; }
        public int Total { get; private set; }
        private bool _listed;

        /// <summary>How far the fetch got, for a line that says where it stopped.</summary>
        public string Stage => _listed ? $"after {Done} of {Total} submission(s)" : "before the server listed its submissions";
        public TimeSpan Elapsed => _clock.Elapsed;

        public void Report(FetchProgress p)
        {
            (Done, Total, _listed) = (p.Done, p.Total, true);
            if (!_terminal || (_lastShown is { } last && _clock.Elapsed - last < TimeSpan.FromMilliseconds(250) && p.Done < p.Total)) return;
            _lastShown = _clock.Elapsed;
            var rate = p.Bytes / Math.Max(_clock.Elapsed.TotalSeconds, 0.001);
            Console.Error.Write($"\r{p.Done}/{p.Total} submissions  {ByteSize.Format(p.Bytes)} of {ByteSize.Format(p.TotalBytes)}  {ByteSize.Format((long)rate)}/s  → {dir}\x1b[K");
            _shown = true;
        }

        public void Clear()
        {
            if (_shown) Console.Error.Write("\r\x1b[K");
            _shown = false;
        }
    }
}
