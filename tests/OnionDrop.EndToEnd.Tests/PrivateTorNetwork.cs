using System.Diagnostics;
using OnionDrop.Testing;
using OnionDrop.Tor;
using OnionDrop.Tor.Control;

namespace OnionDrop.EndToEnd.Tests;

/// <summary>
/// A private Tor network on 127.0.0.1 (scripts/tornet): three authorities, four relays and a client with a
/// SOCKS port. Another tor joins it with <see cref="JoinLines"/> (the daemon's OnionDrop:TorExtraConfig).
/// Every tor exits on its own within 15 s if the test runner dies (TORNET_OWNER_PID).
/// </summary>
public sealed class PrivateTorNetwork : IAsyncDisposable
{
    private readonly TempDirectory _dir;
    private readonly List<Process> _services = [];

    private PrivateTorNetwork(TempDirectory dir, IReadOnlyList<string> joinLines, int socksPort)
    {
        _dir = dir;
        JoinLines = joinLines;
        SocksPort = socksPort;
    }

    public string Directory => _dir.Path;

    /// <summary>The torrc lines a tor needs to join (TestingTorNetwork, DirAuthority...), comments dropped.</summary>
    public IReadOnlyList<string> JoinLines { get; }

    public int SocksPort { get; }

    /// <summary>
    /// SIGNAL NEWNYM to the client, as Tor Browser's "New Identity" sends: among the rest it forgets the onion
    /// services' descriptors, intro point failures and which HSDirs it asked lately.
    /// </summary>
    public async Task ClientNewIdentityAsync()
    {
        await using var control = await TorControlClient.ConnectUnixAsync(Path.Combine(_dir.Path, "client", "control"));
        await control.AuthenticateAsync();
        await control.SignalAsync("NEWNYM");
    }

    /// <summary>
    /// Records where the client's SOCKS users go, as tor sees it: the target ("HOST:PORT") of every stream an
    /// application opens from now until the recorder is disposed (STREAM events with PURPOSE=USER; tor's own
    /// directory streams are left out). What a browser behind this client reaches, and nothing else, is here.
    /// </summary>
    public async Task<StreamRecorder> RecordClientStreamsAsync()
    {
        var control = await TorControlClient.ConnectUnixAsync(Path.Combine(_dir.Path, "client", "control"));
        await control.AuthenticateAsync();
        await control.SetEventsAsync(["STREAM"]);
        return new StreamRecorder(control);
    }

    public sealed class StreamRecorder : IAsyncDisposable
    {
        private readonly TorControlClient _control;
        private readonly Task _reading;
        private readonly List<string> _targets = [];

        internal StreamRecorder(TorControlClient control)
        {
            _control = control;
            _reading = Task.Run(async () =>
            {
                // STREAM ID STATUS CIRCUIT TARGET [KEY=VALUE...] (control-spec §4.1.2): a new stream, or a name to resolve.
                await foreach (var e in control.Events.ReadAllAsync())
                    if (e is UnrecognizedEvent { Keyword: "STREAM" } stream && stream.Text.Split(' ') is [_, "NEW" or "NEWRESOLVE", _, var target, .. var rest]
                        && rest.Contains("PURPOSE=USER"))
                        lock (_targets) _targets.Add(target);
            });
        }

        /// <summary>The targets of the streams opened so far, in order, repeats kept.</summary>
        public IReadOnlyList<string> Targets { get { lock (_targets) return [.. _targets]; } }

        public async ValueTask DisposeAsync()
        {
            await _control.DisposeAsync();
            await _reading.ContinueWith(_ => { });
        }
    }

    /// <summary>
    /// Starts one more tor, joined to the network, that publishes an onion service from its torrc as an operator's
    /// system tor would (HiddenServiceDir, HiddenServicePort VIRTPORT TARGET: docs/operations.md), and returns its
    /// address once the service is published. It stops with the network (`tornet down` finds DIR/NAME/pid).
    /// </summary>
    public async Task<string> StartOnionServiceAsync(string name, int virtualPort, string target, TimeSpan timeout)
    {
        var dir = Path.Combine(_dir.Path, name);
        System.IO.Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        string torrc = Path.Combine(dir, "torrc"), controlSocket = Path.Combine(dir, "control"), serviceDir = Path.Combine(dir, "service");
        await File.WriteAllLinesAsync(torrc, [
            .. JoinLines,
            $"DataDirectory {dir}",
            $"Log notice file {Path.Combine(dir, "notice.log")}",
            "SocksPort 0",
            $"ControlSocket {controlSocket}",
            "CookieAuthentication 1",
            $"__OwningControllerProcess {Environment.ProcessId}",
            // Offline until we listen for HS_DESC events, so that the first uploads are not missed.
            "DisableNetwork 1",
            $"HiddenServiceDir {serviceDir}",
            $"HiddenServicePort {virtualPort} {target}",
        ]);
        var psi = ChildProcess.StartInfo("tor", ["-f", torrc, "--defaults-torrc", Path.Combine(_dir.Path, "empty")]);
        var tor = Process.Start(psi) ?? throw new InvalidOperationException("could not start tor");
        _services.Add(tor);
        // What tor prints before its log file takes over is drained, so that a full pipe never blocks it.
        tor.OutputDataReceived += (_, _) => { };
        tor.ErrorDataReceived += (_, _) => { };
        tor.BeginOutputReadLine();
        tor.BeginErrorReadLine();
        await File.WriteAllTextAsync(Path.Combine(dir, "pid"), tor.Id.ToString());

        using var cts = new CancellationTokenSource(timeout);
        string Log() => File.Exists(Path.Combine(dir, "notice.log")) ? File.ReadAllText(Path.Combine(dir, "notice.log")) : "(no notice.log)";
        try
        {
            while (!File.Exists(controlSocket))
            {
                if (tor.HasExited) throw new InvalidOperationException($"the {name} tor exited {tor.ExitCode}:\n{Log()}");
                await Task.Delay(50, cts.Token);
            }
            await using var control = await TorControlClient.ConnectUnixAsync(controlSocket, cts.Token);
            await control.AuthenticateAsync(cts.Token);
            await control.SetEventsAsync(["HS_DESC"], cts.Token);
            var address = (await File.ReadAllTextAsync(Path.Combine(serviceDir, "hostname"), cts.Token)).Trim();
            var publication = new DescriptorPublication(address);
            await control.CommandAsync("SETCONF DisableNetwork=0", cts.Token);
            await foreach (var e in control.Events.ReadAllAsync(cts.Token))
                if (e is HsDescEvent hs && publication.Observe(hs)) return address;
            throw new InvalidOperationException($"the {name} tor closed its control connection:\n{Log()}");
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"the {name} tor did not publish its onion service within {timeout}:\n{Log()}");
        }
    }

    private static string Script => Path.Combine(RepoPaths.Root, "scripts", "tornet");

    /// <param name="basePort">First of the 50 ports the network uses; distinct per user so networks don't collide.</param>
    public static async Task<PrivateTorNetwork> StartAsync(int basePort)
    {
        var dir = new TempDirectory("oniondrop-tornet-");
        var psi = ChildProcess.StartInfo(Script, ["up", dir.Path]);
        psi.Environment["TORNET_BASE_PORT"] = basePort.ToString();
        psi.Environment["TORNET_OWNER_PID"] = Environment.ProcessId.ToString();
        var result = await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(3));
        if (result.ExitCode != 0)
        {
            await ChildProcess.RunAsync(Script, ["down", dir.Path]);
            dir.Dispose();
            throw new InvalidOperationException("scripts/tornet up failed\n" + result);
        }
        TestContext.Progress.WriteLine(result.Stderr.Trim());
        var join = (await File.ReadAllLinesAsync(Path.Combine(dir.Path, "join.torrc"))).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
        var socks = int.Parse((await File.ReadAllTextAsync(Path.Combine(dir.Path, "socks-port"))).Trim());
        return new PrivateTorNetwork(dir, join, socks);
    }

    public async ValueTask DisposeAsync()
    {
        var result = await ChildProcess.RunAsync(Script, ["down", _dir.Path]);
        TestContext.Progress.WriteLine(result.Stderr.Trim());
        foreach (var tor in _services) tor.Dispose();
        _dir.Dispose();
    }
}
