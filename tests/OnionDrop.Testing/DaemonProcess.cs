using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text.Json;

namespace OnionDrop.Testing;

/// <summary>
/// The built `oniondrop serve` as a child process, as an operator would run it: its own data directory, a
/// loopback listener on a free port, optionally wrapped (strace). Kill it hard with <see cref="Kill"/>, stop it
/// gently with <see cref="StopAsync"/>; disposing always leaves no process behind.
/// </summary>
public sealed class DaemonProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();

    public string DataDir { get; }
    public int Port { get; }
    public Uri BaseAddress => new($"http://127.0.0.1:{Port}/");

    /// <summary>The daemon's own pid (the wrapper's child when wrapped).</summary>
    public int Pid { get; private set; }

    /// <summary>The last lines the daemon (and its wrapper) wrote, for failure messages.</summary>
    public string Output => string.Join('\n', _output);

    private DaemonProcess(Process process, string dataDir, int port)
    {
        _process = process;
        DataDir = dataDir;
        Port = port;
        Pid = process.Id;
    }

    /// <param name="settings">extra "OnionDrop" settings, written to a config file beside the data directory</param>
    /// <param name="wrapper">a command line the daemon runs under, e.g. ["strace", "-f", "-o", FILE]</param>
    /// <param name="workingDirectory">where the daemon starts (systemd starts services in "/")</param>
    /// <param name="logLevels">the config file's "Logging:LogLevel" section (category → level), as an operator would set it</param>
    public static async Task<DaemonProcess> StartAsync(string dataDir, string recipient, string tor = "none",
        IReadOnlyDictionary<string, object>? settings = null, IReadOnlyList<string>? wrapper = null, TimeSpan? readyTimeout = null,
        string? workingDirectory = null, IReadOnlyDictionary<string, string>? logLevels = null)
    {
        var port = FreePort.Next();
        var config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(dataDir))!, $"oniondrop-{port}.json");
        var file = new Dictionary<string, object> { ["OnionDrop"] = settings ?? new Dictionary<string, object>() };
        if (logLevels is not null) file["Logging"] = new Dictionary<string, object> { ["LogLevel"] = logLevels };
        await File.WriteAllTextAsync(config, JsonSerializer.Serialize(file));

        string[] serve = [Oniondrop.Dll, "serve", "--config", config, "--data-dir", dataDir, "--recipient", recipient,
            "--tor", tor, "--listen", $"127.0.0.1:{port}"];
        var psi = wrapper is { Count: > 0 }
            ? ChildProcess.StartInfo(wrapper[0], [.. wrapper.Skip(1), "dotnet", .. serve])
            : ChildProcess.StartInfo("dotnet", serve);
        // An ONIONDROP_* variable the test runner happens to have must not reconfigure (or break) the daemon.
        foreach (var name in psi.Environment.Keys.Where(k => k.StartsWith("ONIONDROP_", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(name);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        if (workingDirectory is not null) psi.WorkingDirectory = workingDirectory;

        var process = Process.Start(psi) ?? throw new InvalidOperationException("could not start oniondrop serve");
        var daemon = new DaemonProcess(process, dataDir, port);
        process.OutputDataReceived += (_, e) => daemon.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => daemon.Keep(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.StandardInput.Close();
        try
        {
            if (wrapper is { Count: > 0 }) daemon.Pid = await daemon.WaitForChildAsync(TimeSpan.FromSeconds(30));
            await daemon.WaitReadyAsync(readyTimeout ?? TimeSpan.FromSeconds(60));
        }
        catch
        {
            await daemon.DisposeAsync();
            throw;
        }
        return daemon;
    }

    private void Keep(string? line)
    {
        if (line is null) return;
        _output.Enqueue(line);
        while (_output.Count > 300) _output.TryDequeue(out _);
    }

    private async Task<int> WaitForChildAsync(TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (PosixProcess.Children(_process.Id) is [var child, ..] && PosixProcess.Name(child) is "dotnet") return child;
            if (_process.HasExited) break;
            await Task.Delay(50);
        }
        throw new InvalidOperationException("the wrapped daemon did not start\n" + Output);
    }

    /// <summary>Polls GET / on the loopback listener until it answers 200.</summary>
    public async Task WaitReadyAsync(TimeSpan timeout)
    {
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(5) };
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (_process.HasExited) throw new InvalidOperationException($"oniondrop serve exited with {_process.ExitCode}\n{Output}");
            try
            {
                using var response = await client.GetAsync("/");
                if (response.IsSuccessStatusCode) return;
            }
            // Not listening yet, or a connection reset as it was made: .NET then throws the SocketException of its
            // getpeername (ENOTCONN) unwrapped, seen once in a CrashTests start.
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException or System.Net.Sockets.SocketException) { }
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"oniondrop serve not ready after {timeout}\n{Output}");
            await Task.Delay(100);
        }
    }

    public bool HasExited => _process.HasExited && !PosixProcess.IsAlive(Pid);

    /// <summary>kill -9 of the daemon itself (not its wrapper), then waits until it is gone.</summary>
    public async Task KillAsync()
    {
        PosixProcess.Signal(Pid, PosixProcess.SIGKILL);
        if (!await WaitGoneAsync(TimeSpan.FromSeconds(30))) throw new TimeoutException($"the daemon {Pid} outlived kill -9 by 30 s\n{Output}");
    }

    /// <summary>SIGTERM, as systemd would stop it; SIGKILL if it has not exited within <paramref name="grace"/>. Returns the exit code.</summary>
    public async Task<int> StopAsync(TimeSpan? grace = null)
    {
        PosixProcess.Signal(Pid, PosixProcess.SIGTERM);
        if (!await WaitGoneAsync(grace ?? TimeSpan.FromSeconds(30)))
        {
            PosixProcess.Signal(Pid, PosixProcess.SIGKILL);
            if (!await WaitGoneAsync(TimeSpan.FromSeconds(10))) throw new TimeoutException($"the daemon {Pid} outlived SIGTERM and kill -9\n{Output}");
        }
        return _process.HasExited ? _process.ExitCode : -1;
    }

    private async Task<bool> WaitGoneAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await _process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { return false; }
        // The wrapper (strace) exits after its tracee; either way the daemon is gone.
        return !PosixProcess.IsAlive(Pid);
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // The daemon's own children (tor) go with it: a test never leaves a process behind.
            var tree = Descendants(Pid).Prepend(Pid).Append(_process.Id).Distinct().ToList();
            foreach (var pid in tree) PosixProcess.Signal(pid, PosixProcess.SIGKILL);
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            await WaitGoneAsync(TimeSpan.FromSeconds(10));
        }
        _process.Dispose();
    }

    /// <summary>Every process below <paramref name="pid"/>.</summary>
    public static IEnumerable<int> Descendants(int pid)
    {
        foreach (var child in PosixProcess.Children(pid))
        {
            yield return child;
            foreach (var grandchild in Descendants(child)) yield return grandchild;
        }
    }
}
