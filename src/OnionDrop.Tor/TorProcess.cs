using System.Diagnostics;
using Microsoft.Extensions.Logging;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor;

/// <summary>What <see cref="TorProcess"/> needs to start tor.</summary>
public sealed record TorLaunchSettings(string DataDir)
{
    /// <summary>"tor" (searched on PATH and in /usr/sbin) or a path.</summary>
    public string TorPath { get; init; } = "tor";

    /// <summary>Template text; null means <see cref="TorrcTemplate.LoadDefault"/>.</summary>
    public string? Template { get; init; }

    public string TemplateName { get; init; } = TorrcTemplate.FileName;

    public IReadOnlyList<string> ExtraConfig { get; init; } = [];

    /// <summary>The web server's Unix socket; null means DATA/web.sock.</summary>
    public string? WebSocket { get; init; }

    /// <summary>How long tor may take to open its control socket.</summary>
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// One running tor, started from the rendered torrc.template, with its log forwarded into an
/// <see cref="ILogger"/> and an authenticated control connection that owns it (TAKEOWNERSHIP: tor exits
/// when the connection closes, so it never outlives the daemon).
/// </summary>
public sealed class TorProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ILogger _logger;
    private readonly Queue<TorLogLine> _recent = new();
    private readonly object _gate = new();
    private readonly TaskCompletionSource _stdoutClosed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private const string ConfigurationRefused = "Reading config failed";
    private bool _refusedConfiguration;

    /// <summary>util-linux's setsid, on every Debian system.</summary>
    private const string Setsid = "/usr/bin/setsid";

    private TorProcess(Process process, TorrcValues values, ILogger logger)
    {
        _process = process;
        Values = values;
        _logger = logger;
        Pid = process.Id;
    }

    public TorrcValues Values { get; }

    public int Pid { get; }

    public TorControlClient Control { get; private set; } = null!;

    /// <summary>tor's exit code, once it has exited (and its output has been read).</summary>
    public Task<int> Exited { get; private set; } = null!;

    /// <summary>The last [warn] or [err] line tor logged, if any.</summary>
    public string? LastWarning { get; private set; }

    /// <summary>Every log line tor writes, after it has been logged (for the supervisor's state).</summary>
    public event Action<TorLogLine>? LogLine;

    /// <summary>
    /// Starts tor and connects to it. Creates DATA/tor and DATA/tor/onion-service (0700) and writes
    /// DATA/tor/torrc (0600).
    /// </summary>
    /// <exception cref="TorNotFoundException">No tor binary.</exception>
    /// <exception cref="TorConfigurationException">The template is unsafe.</exception>
    /// <exception cref="TorStartException">tor refused the configuration or exited, with tor's own words.</exception>
    /// <exception cref="TorAuthenticationException">The control socket refused us.</exception>
    public static async Task<TorProcess> StartAsync(TorLaunchSettings settings, ILogger logger, CancellationToken cancellationToken = default)
    {
        var torPath = ResolveTor(settings.TorPath);
        var values = new TorrcValues(Path.GetFullPath(settings.DataDir), Environment.ProcessId);
        if (settings.WebSocket is { } webSocket) values = values with { WebSocket = Path.GetFullPath(webSocket) };
        var torrc = TorrcTemplate.Render(settings.Template ?? TorrcTemplate.LoadDefault(), values, settings.ExtraConfig, settings.TemplateName);

        PreparePrivateDirectory(values.TorDir);
        PreparePrivateDirectory(values.OnionServiceDir);
        OnionServiceKey.Check(values.OnionServiceDir, logger);
        var torrcPath = Path.Combine(values.TorDir, "torrc");
        await WritePrivateFileAsync(torrcPath, torrc, cancellationToken);
        var emptyDefaults = Path.Combine(values.TorDir, "torrc-defaults");
        await WritePrivateFileAsync(emptyDefaults, "", cancellationToken);

        // In a session of its own (setsid execs tor in place: same pid): a terminal's Ctrl-C, sent to the whole
        // foreground process group, must reach the daemon only, which then stops tor in order. tor that got it too
        // would die under its supervisor. tor still exits with the daemon (__OwningControllerProcess).
        var psi = new ProcessStartInfo(File.Exists(Setsid) ? Setsid : torPath)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = values.TorDir,
        };
        // Our own empty defaults file: /etc/tor/torrc-defaults (if any) must not change this tor.
        if (psi.FileName == Setsid) psi.ArgumentList.Add(torPath);
        foreach (var a in new[] { "-f", torrcPath, "--defaults-torrc", emptyDefaults }) psi.ArgumentList.Add(a);

        var process = Process.Start(psi) ?? throw new TorStartException($"could not start {torPath}");
        process.StandardInput.Close();
        var tor = new TorProcess(process, values, logger);
        tor.PumpOutput();
        logger.LogInformation("Started tor (pid {Pid}) from {Torrc}", tor.Pid, torrcPath);
        try
        {
            await tor.ConnectAsync(settings.StartTimeout, cancellationToken);
            return tor;
        }
        catch
        {
            await tor.DisposeAsync();
            throw;
        }
    }

    /// <summary>Creates (or keeps) a directory 0700: tor refuses to run with its data or onion service directory open to others.</summary>
    private static void PreparePrivateDirectory(string path)
    {
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        try
        {
            Directory.CreateDirectory(path, Private);
            File.SetUnixFileMode(path, Private);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // .NET's words alone ("Access to the path ... is denied") say neither what is wrong with it nor what to do.
            var me = UnixAccount.UserName(UnixAccess.EffectiveUid);
            string what;
            try { what = File.Exists(path) ? "a file, not a directory" : Directory.Exists(path) ? UnixAccess.Describe(UnixAccess.Of(path)) : "not there"; }
            catch (IOException) { what = "not reachable"; }
            throw new TorStartException($"cannot prepare tor's directory {path} ({what}): {e.Message} " +
                $"It must be a directory that the daemon's user, {me}, owns (e.g. chown -R {me} {path})");
        }
    }

    private void PumpOutput()
    {
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) { _stdoutClosed.TrySetResult(); return; }
            Record(TorLogLine.Parse(e.Data));
        };
        // tor writes to stderr only before its log is set up (e.g. a torrc it cannot even read).
        _process.ErrorDataReceived += (_, e) => { if (e.Data is { Length: > 0 } line) Record(new TorLogLine(TorSeverity.Err, line)); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        Exited = WaitForExitAsync();
    }

    private async Task<int> WaitForExitAsync()
    {
        await _process.WaitForExitAsync();
        await _stdoutClosed.Task.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { });
        return _process.ExitCode;
    }

    private void Record(TorLogLine line)
    {
        lock (_gate)
        {
            _recent.Enqueue(line);
            while (_recent.Count > 20) _recent.Dequeue();
            if (line.Severity >= TorSeverity.Warn) LastWarning = line.Message;
            // tor's words, for any torrc it will not run with (an unknown option, a bad value), and only for that.
            if (line.Message.StartsWith(ConfigurationRefused, StringComparison.Ordinal)) _refusedConfiguration = true;
        }
        _logger.Log(line.LogLevel, "tor: {Message}", line.Message);
        LogLine?.Invoke(line);
    }

    /// <summary>tor's last warnings and errors, oldest first (what it said before refusing to run).</summary>
    public string RecentProblems()
    {
        lock (_gate)
        {
            var problems = _recent.Where(l => l.Severity >= TorSeverity.Warn).Select(l => l.Message).ToList();
            return problems.Count > 0 ? string.Join(" | ", problems) : string.Join(" | ", _recent.TakeLast(3).Select(l => l.Message));
        }
    }

    private async Task ConnectAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        while (true)
        {
            if (Exited.IsCompleted) throw await ExitedBeforeReadyAsync();
            if (File.Exists(Values.ControlSocket))
            {
                try
                {
                    Control = await TorControlClient.ConnectUnixAsync(Values.ControlSocket, deadline.Token);
                    break;
                }
                catch (System.Net.Sockets.SocketException) { /* tor has not started listening yet */ }
            }
            try { await Task.Delay(100, deadline.Token); }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                throw new TorStartException($"tor did not open its control socket {Values.ControlSocket} within {timeout.TotalSeconds:0} s: {RecentProblems()}");
            }
        }
        // tor may still be on its way out (another tor holds DATA/tor, say: it opens the control socket, then finds
        // the lock taken and exits) or not answer at all: either way the start must end, in tor's own words.
        var setUp = SetUpControlAsync(deadline.Token);
        try
        {
            if (await Task.WhenAny(setUp, Exited) == setUp) { await setUp; return; }
            _ = setUp.ContinueWith(t => t.Exception, TaskContinuationOptions.OnlyOnFaulted);
        }
        catch (Exception e) when (e is IOException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            await Task.WhenAny(Exited, Task.Delay(TimeSpan.FromSeconds(5), cancellationToken));
            if (!Exited.IsCompleted)
                throw new TorStartException($"tor did not answer on its control socket {Values.ControlSocket} within {timeout.TotalSeconds:0} s: {RecentProblems()}");
        }
        throw await ExitedBeforeReadyAsync();
    }

    /// <summary>tor's own last words, and whether they were that it refused its configuration (a bad TorExtraConfig line).</summary>
    private async Task<TorStartException> ExitedBeforeReadyAsync() =>
        new($"tor {DescribeExit(await Exited)} before it was ready: {RecentProblems()}", badConfiguration: _refusedConfiguration);

    private async Task SetUpControlAsync(CancellationToken cancellationToken)
    {
        await Control.AuthenticateAsync(cancellationToken);
        // Ownership by connection replaces ownership by pid (control-spec §3.23): tor exits as soon as we go.
        await Control.TakeOwnershipAsync(cancellationToken);
        await Control.ResetConfAsync("__OwningControllerProcess", cancellationToken);
        if (await RunningConfiguration.ProblemsAsync(Control, Values, cancellationToken) is { Count: > 0 } problems)
            throw new TorStartException("tor runs with a configuration the daemon does not allow: " + string.Join("; ", problems));
    }

    /// <summary>Asks tor to shut down (SIGNAL SHUTDOWN), kills it if it has not exited within <paramref name="timeout"/>.</summary>
    public async Task StopAsync(TimeSpan timeout)
    {
        // One budget for both steps: a stopped or hung tor answers neither, and the daemon's stop must fit in systemd's TimeoutStopSec.
        var clock = Stopwatch.StartNew();
        if (!Exited.IsCompleted && Control is not null)
        {
            try { await Control.SignalAsync("SHUTDOWN").WaitAsync(timeout); }
            catch (Exception e) when (e is IOException or TimeoutException or TorControlException) { /* it may be gone already */ }
        }
        try { await Exited.WaitAsync(TimeSpan.FromTicks(Math.Max(0, (timeout - clock.Elapsed).Ticks))); }
        catch (TimeoutException)
        {
            _logger.LogWarning("tor (pid {Pid}) did not exit within {Seconds} s; killing it", Pid, timeout.TotalSeconds);
            _process.Kill();
            await Exited;
        }
    }

    /// <summary>
    /// "exited with code 1", or "was killed by signal 9 (SIGKILL)": .NET reports a death by signal N as code 128+N,
    /// and tor exits with 0 or 1 itself. Said plainly, so that a kill (the OOM killer's, an operator's) is not read
    /// as tor's own refusal, nor blamed on whatever tor last warned about.
    /// </summary>
    public static string DescribeExit(int code) => code switch
    {
        > 128 and < 160 => $"was killed by signal {code - 128}" + ((code - 128) switch
        {
            9 => " (SIGKILL)", 15 => " (SIGTERM)", 6 => " (SIGABRT)", 11 => " (SIGSEGV)", 2 => " (SIGINT)", 1 => " (SIGHUP)", _ => "",
        }),
        _ => $"exited with code {code}",
    };

    /// <summary>Kills tor at once (SIGKILL works on a stopped process too); <see cref="Exited"/> follows.</summary>
    public void Kill()
    {
        try { _process.Kill(); } catch (InvalidOperationException) { /* already gone */ }
    }

    public async ValueTask DisposeAsync()
    {
        if (!Exited.IsCompleted)
        {
            try { _process.Kill(); } catch (InvalidOperationException) { }
            try { await Exited.WaitAsync(TimeSpan.FromSeconds(10)); } catch (TimeoutException) { }
        }
        if (Control is not null) await Control.DisposeAsync();
        _process.Dispose();
    }

    /// <summary>The tor binary: a path as given, or a name searched on PATH and in the sbin directories Debian uses.</summary>
    public static string ResolveTor(string torPath)
    {
        if (torPath.Contains('/'))
            return File.Exists(torPath) ? torPath : throw new TorNotFoundException(torPath);
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Concat(["/usr/sbin", "/usr/local/sbin", "/sbin"]);
        foreach (var dir in dirs)
        {
            var candidate = Path.Combine(dir, torPath);
            if (File.Exists(candidate)) return candidate;
        }
        throw new TorNotFoundException(torPath);
    }

    private static async Task WritePrivateFileAsync(string path, string contents, CancellationToken cancellationToken)
    {
        var temp = path + ".tmp";
        File.Delete(temp);
        await using (var stream = new FileStream(temp, new FileStreamOptions
               {
                   Mode = FileMode.CreateNew, Access = FileAccess.Write,
                   UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
               }))
        await using (var writer = new StreamWriter(stream))
            await writer.WriteAsync(contents.AsMemory(), cancellationToken);
        File.Move(temp, path, overwrite: true);
    }
}

/// <summary>tor could not be started or did not come up; the message carries tor's own words.</summary>
/// <param name="badConfiguration">
/// The operator's settings are at fault (no tor binary, a torrc tor refuses): starting again cannot help, so the
/// daemon exits as for any bad configuration (2, which systemd does not restart), not as for a failure (1).
/// </param>
public class TorStartException(string message, bool badConfiguration = false) : Exception(message)
{
    public bool BadConfiguration { get; } = badConfiguration;
}

/// <summary>There is no tor binary where we looked: the path given, or for a bare name PATH and the sbin directories.</summary>
public sealed class TorNotFoundException(string torPath) : TorStartException(
    $"tor not found ('{torPath}', {(torPath.Contains('/') ? "no such file" : "looked on PATH and in /usr/sbin")}): install Debian's tor package " +
    "(sudo apt-get install tor, or scripts/setup-deps) or set OnionDrop:TorPath to the tor binary", badConfiguration: true)
{
    public string TorPath { get; } = torPath;
}
