using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using OnionDrop.Tor;
using OnionDrop.Tor.Control;

namespace OnionDrop.Bench;

/// <summary>
/// The onion service on a private Tor network (scripts/tornet), beside bare tor on the same network:
/// <list type="bullet">
/// <item>time from starting `oniondrop serve --tor launch` to "published" (status.json) beside the time a bare
/// tor with a HiddenServiceDir takes from its start to the same point, read from its HS_DESC events the same way
/// (<see cref="DescriptorPublication"/>: every HSDir uploaded to has answered, one accepting) (target: within 2 s);</item>
/// <item>upload throughput of curl through the client's SOCKS port to the daemon's form, beside the same curl
/// to a plain file sink (Kestrel writing the body to a file) behind the bare tor's onion service (target: >= 0.9).</item>
/// <item>the same pair on one and the same circuit: the bare tor's second service forwards port 80 to the daemon's
/// web.sock and port 81 to the sink, and both uploads of a round share one rendezvous circuit (same SOCKS
/// credentials), after a warm-up upload and in alternating order. Separate circuits differ by far more than the
/// daemon and the sink do (single uploads 1.4-4.1 MB/s), so this paired ratio is the one that can tell 0.9 from 1.0.</item>
/// </list>
/// Usage: oniondrop-bench tor [--rounds N] [--size-mib N] [--base-port P]
/// </summary>
public sealed class TorBenchmark : IBenchmark
{
    public string Name => "tor";
    public IReadOnlyList<string> Tools(string[] args) => ["tor", "curl"];
    public string Description => "serve → published vs bare tor, and upload throughput vs a file sink, on a private Tor network";

    private static readonly string Repo = FindRepo();
    private static string Script(string name) => Path.Combine(Repo, "scripts", name);
    private static string OniondropDll => Path.Combine(Repo, "src", "OnionDrop.Cli", "bin", "Release", "net10.0", "linux-x64", "oniondrop.dll");

    /// <summary>The onion-service options torrc.template gives the daemon's tor; the bare tor gets them too, so only the daemon differs.</summary>
    private static readonly string[] ServiceDefenses =
    [
        "HiddenServicePoWDefensesEnabled 1", "HiddenServicePoWQueueRate 250", "HiddenServicePoWQueueBurst 2500",
        "HiddenServiceEnableIntroDoSDefense 1", "HiddenServiceEnableIntroDoSRatePerSec 25", "HiddenServiceEnableIntroDoSBurstPerSec 200",
        "HiddenServiceMaxStreams 20", "HiddenServiceMaxStreamsCloseCircuit 1",
    ];

    public async Task<int> RunAsync(string[] args)
    {
        int rounds = 3, sizeMiB = 8, basePort = 17300;
        for (var i = 0; i + 1 < args.Length; i += 2)
            switch (args[i])
            {
                case "--rounds": rounds = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--size-mib": sizeMiB = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                case "--base-port": basePort = int.Parse(args[i + 1], CultureInfo.InvariantCulture); break;
                default: Console.Error.WriteLine("usage: oniondrop-bench tor [--rounds N] [--size-mib N] [--base-port P]"); return 2;
            }

        var work = Directory.CreateTempSubdirectory("oniondrop-bench-tor-").FullName;
        var net = Path.Combine(work, "tornet");
        var started = new List<Process>();
        WebApplication? sink = null;
        try
        {
            // Build (if needed) before any clock starts; then run the built dll itself, so that no rebuild
            // (scripts/oniondrop rebuilds when a source changed) ever lands inside a measurement.
            await RunAsync(Script("oniondrop"), ["--help"]);
            var keygen = await RunAsync("dotnet", [OniondropDll, "keygen", "-o", Path.Combine(work, "journalist.key")]);
            var recipient = System.Text.RegularExpressions.Regex.Match(keygen, "odpk1[a-z0-9]+").Value;

            Console.WriteLine($"tor: private network (scripts/tornet, ports {basePort}..{basePort + 49}), {rounds} rounds, uploads of {sizeMiB} MiB");
            var netUp = Stopwatch.StartNew();
            await RunAsync(Script("tornet"), ["up", net], new() { ["TORNET_BASE_PORT"] = basePort.ToString(), ["TORNET_OWNER_PID"] = Environment.ProcessId.ToString() });
            Console.WriteLine($"  network up in {netUp.Elapsed.TotalSeconds:F1} s");
            var join = File.ReadAllLines(Path.Combine(net, "join.torrc")).Where(l => l.Length > 0 && !l.StartsWith('#')).ToList();
            var socks = File.ReadAllText(Path.Combine(net, "socks-port")).Trim();

            // 1. Time to published. The two start one after the other, and the second is timed while the first
            // already runs: which one starts first alternates by round, so both see the same conditions.
            var serveTimes = new List<double>();
            var bareTimes = new List<double>();
            (Process Process, string DataDir, string Address)? lastServe = null;
            (Process Process, string Dir, string Address)? lastBare = null;
            for (var r = 1; r <= rounds; r++)
            {
                var serveDir = Path.Combine(work, $"serve{r}");
                async Task<(Process Process, double Seconds, string Dir, string Address)> Bare()
                {
                    // The bare tor's second service points at the daemon's socket (section 2); tor needs it only on a connection.
                    var b = await StartBareTorAsync(Path.Combine(work, $"bare{r}"), join, Path.Combine(serveDir, "web.sock"));
                    started.Add(b.Process);
                    return b;
                }
                var bareFirst = r % 2 == 0;
                var bare = bareFirst ? await Bare() : default;
                var serve = await StartServeAsync(serveDir, recipient, join);
                started.Add(serve.Process);
                if (!bareFirst) bare = await Bare();
                serveTimes.Add(serve.Seconds);
                bareTimes.Add(bare.Seconds);
                Console.WriteLine($"  round {r}: oniondrop serve → published {serve.Seconds,6:F2} s   bare tor → published {bare.Seconds,6:F2} s");
                if (r < rounds)
                {
                    await StopAsync(serve.Process);
                    await StopAsync(bare.Process);
                }
                else
                {
                    lastServe = (serve.Process, serve.DataDir, serve.Address);
                    lastBare = (bare.Process, bare.Dir, bare.Address);
                }
            }
            var serveMedian = Median(serveTimes);
            var bareMedian = Median(bareTimes);
            Console.WriteLine($"  median: oniondrop serve {serveMedian:F2} s, bare tor {bareMedian:F2} s, difference {serveMedian - bareMedian:+0.00;-0.00} s" +
                              $"   (target within 2 s: {(serveMedian - bareMedian <= 2 ? "met" : "MISSED")})");

            // 2. Upload throughput through the network: the daemon's form vs a plain file sink behind bare tor.
            var sinkSocket = Path.Combine(lastBare!.Value.Dir, "sink.sock");
            sink = StartSink(sinkSocket, Path.Combine(work, "sink.out"));
            await sink.StartAsync();
            var file = Path.Combine(work, "upload.bin");
            await using (var f = File.Create(file))
            {
                var buffer = new byte[1 << 20];
                for (var i = 0; i < sizeMiB; i++) { Random.Shared.NextBytes(buffer); await f.WriteAsync(buffer); }
            }
            // The daemon through the bare tor's second service: same daemon, unsupervised tor.
            var daemonViaBare = (await File.ReadAllTextAsync(Path.Combine(lastBare.Value.Dir, "hs-daemon", "hostname"))).Trim();
            var oniondrop = new List<double>();
            var viaBare = new List<double>();
            var plain = new List<double>();
            for (var r = 1; r <= rounds; r++)
            {
                oniondrop.Add(await CurlUploadAsync(socks, lastServe!.Value.Address, file));
                plain.Add(await CurlUploadAsync(socks, lastBare.Value.Address, file));
                // The daemon answers only to its own address (Host allow-list), so the request names it.
                viaBare.Add(await CurlUploadAsync(socks, daemonViaBare, file, host: lastServe.Value.Address));
                Console.WriteLine($"  round {r}: upload to oniondrop {oniondrop[^1],6:F2} MB/s   to the file sink {plain[^1],6:F2} MB/s" +
                                  $"   (to oniondrop's socket via the bare tor {viaBare[^1],6:F2} MB/s)");
            }
            var ratio = Median(oniondrop) / Median(plain);
            Console.WriteLine($"  median: oniondrop {Median(oniondrop):F2} MB/s, file sink {Median(plain):F2} MB/s, ratio {ratio:F2}   (target >= 0.90: {(ratio >= 0.9 ? "met" : "MISSED")}; each upload on its own circuit)");
            Console.WriteLine($"  decomposition: daemon behind its supervised tor / behind the bare tor {Median(oniondrop) / Median(viaBare):F2} (tor supervision's share);" +
                              $" daemon / file sink, both behind the bare tor {Median(viaBare) / Median(plain):F2} (the web handler's share)");

            // 3. The same comparison with the path held fixed: daemon (port 80) and sink (port 81) of one service, one circuit per round.
            var warmUp = Path.Combine(work, "warm-up.bin");
            await File.WriteAllBytesAsync(warmUp, new byte[1 << 20]);
            var pairedDaemon = new List<double>();
            var pairedSink = new List<double>();
            // CPU seconds each side spends per upload: the daemon process (not its tor), and this process for the sink.
            // Here the whole Tor network shares the 2 cores with them, so CPU one side uses is throughput the relays lose.
            var daemonPid = lastServe!.Value.Process.Id;
            var daemonCpu = new List<double>();
            var sinkCpu = new List<double>();
            async Task<double> Daemon(string circuit)
            {
                var before = CpuSeconds(daemonPid);
                var mbps = await CurlUploadAsync(socks, daemonViaBare, file, host: lastServe.Value.Address, circuit: circuit);
                daemonCpu.Add(CpuSeconds(daemonPid) - before);
                return mbps;
            }
            async Task<double> Sink(string circuit)
            {
                var before = CpuSeconds(Environment.ProcessId);
                var mbps = await CurlUploadAsync(socks, daemonViaBare + ":81", file, circuit: circuit);
                sinkCpu.Add(CpuSeconds(Environment.ProcessId) - before);
                return mbps;
            }
            for (var r = 1; r <= rounds; r++)
            {
                var circuit = $"paired{r}";
                // Tor's congestion control starts each circuit in slow start: the first transfer would pay for it alone.
                await CurlUploadAsync(socks, daemonViaBare + ":81", warmUp, circuit: circuit);
                double d, k;
                if (r % 2 == 1) { d = await Daemon(circuit); k = await Sink(circuit); }
                else { k = await Sink(circuit); d = await Daemon(circuit); }
                pairedDaemon.Add(d);
                pairedSink.Add(k);
                Console.WriteLine($"  same circuit, round {r} ({(r % 2 == 1 ? "daemon first" : "sink first")}): oniondrop {d,6:F2} MB/s   file sink {k,6:F2} MB/s   ratio {d / k:F2}" +
                                  $"   CPU per upload: daemon {daemonCpu[^1]:F2} s, sink {sinkCpu[^1]:F2} s");
            }
            var pairedRatio = Median(pairedDaemon.Zip(pairedSink, (d, k) => d / k).ToList());
            Console.WriteLine($"  same circuit, median of the rounds' ratios: {pairedRatio:F2}   (oniondrop {Median(pairedDaemon):F2} MB/s, file sink {Median(pairedSink):F2} MB/s;" +
                              $" target >= 0.90: {(pairedRatio >= 0.9 ? "met" : "MISSED")})");
            Console.WriteLine($"  CPU per {sizeMiB} MiB upload (median): daemon {Median(daemonCpu):F2} s, file sink {Median(sinkCpu):F2} s (clock ticks of 10 ms)");
            var load = File.ReadAllText("/proc/loadavg").Split(' ');
            Console.WriteLine($"  load average at the end: {load[0]} {load[1]} {load[2]} ({Environment.ProcessorCount} cores)");
            return 0;
        }
        finally
        {
            if (sink is not null) await sink.DisposeAsync();
            foreach (var p in started) await StopAsync(p);
            try { await RunAsync(Script("tornet"), ["down", net]); } catch (Exception e) { Console.Error.WriteLine(e.Message); }
            Directory.Delete(work, recursive: true);
        }
    }

    /// <summary>Starts a process whose output is read and dropped, so a full pipe never stalls it.</summary>
    private static Process StartDiscardingOutput(ProcessStartInfo psi)
    {
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    /// <summary>Starts `oniondrop serve --tor launch` joined to the network; returns once status.json says published.</summary>
    private static async Task<(Process Process, double Seconds, string DataDir, string Address)> StartServeAsync(string dataDir, string recipient, List<string> join)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { OniondropDll, "serve", "--data-dir", dataDir, "--recipient", recipient, "--tor", "launch" }) psi.ArgumentList.Add(a);
        psi.Environment["ONIONDROP_TOR_EXTRA_CONFIG"] = string.Join('\n', join);
        var clock = Stopwatch.StartNew();
        var process = StartDiscardingOutput(psi);
        var status = Path.Combine(dataDir, "status.json");
        while (clock.Elapsed < TimeSpan.FromMinutes(3))
        {
            if (process.HasExited) throw new InvalidOperationException($"oniondrop serve exited with {process.ExitCode}");
            try
            {
                var tor = JsonDocument.Parse(await File.ReadAllTextAsync(status)).RootElement.GetProperty("tor");
                if (tor.ValueKind == JsonValueKind.Object && tor.GetProperty("published").GetBoolean())
                    return (process, clock.Elapsed.TotalSeconds, dataDir, tor.GetProperty("onionAddress").GetString()!);
            }
            catch (Exception e) when (e is IOException or JsonException or KeyNotFoundException or InvalidOperationException) { }
            await Task.Delay(20);
        }
        throw new TimeoutException("oniondrop serve did not publish within 3 minutes");
    }

    /// <summary>A bare tor with a HiddenServiceDir on the network; returns once its service is published, as the daemon's is judged.</summary>
    /// <param name="daemonSocket">A second service of the bare tor forwards port 80 to the daemon's web.sock (to tell tor's share from the
    /// daemon's) and port 81 to the sink (to compare both on one circuit).</param>
    private static async Task<(Process Process, double Seconds, string Dir, string Address)> StartBareTorAsync(string dir, List<string> join, string daemonSocket)
    {
        Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var torrc = Path.Combine(dir, "torrc");
        await File.WriteAllLinesAsync(torrc, [.. join,
            "SocksPort 0", $"DataDirectory {dir}/data", $"ControlSocket {dir}/control", "CookieAuthentication 1", $"Log notice file {dir}/notice.log",
            $"__OwningControllerProcess {Environment.ProcessId}",
            $"HiddenServiceDir {dir}/hs", $"HiddenServicePort 80 unix:{dir}/sink.sock", .. ServiceDefenses,
            $"HiddenServiceDir {dir}/hs-daemon", $"HiddenServicePort 80 unix:{daemonSocket}", $"HiddenServicePort 81 unix:{dir}/sink.sock", .. ServiceDefenses]);
        var psi = new ProcessStartInfo("tor") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "-f", torrc }) psi.ArgumentList.Add(a);
        var clock = Stopwatch.StartNew();
        var process = StartDiscardingOutput(psi);
        TorControlClient? control = null;
        while (control is null)
        {
            if (process.HasExited) throw new InvalidOperationException($"bare tor exited with {process.ExitCode}");
            try { control = await TorControlClient.ConnectUnixAsync(Path.Combine(dir, "control")); }
            catch (System.Net.Sockets.SocketException) { await Task.Delay(20); }
        }
        await using (control)
        {
            await control.AuthenticateAsync();
            await control.SetEventsAsync(["HS_DESC"]);
            var address = (await File.ReadAllTextAsync(Path.Combine(dir, "hs", "hostname"))).Trim();
            var publication = new DescriptorPublication(address);
            using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
            await foreach (var e in control.Events.ReadAllAsync(timeout.Token))
                if (e is HsDescEvent hs && publication.Observe(hs))
                    return (process, clock.Elapsed.TotalSeconds, dir, address);
        }
        throw new InvalidOperationException("bare tor's control connection closed before it published");
    }

    /// <summary>The plain file sink: Kestrel on a Unix socket, writing each request body to a file and answering 200.</summary>
    private static WebApplication StartSink(string socket, string outFile)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.ListenUnixSocket(socket);
        });
        var app = builder.Build();
        app.MapPost("/", async (HttpContext context) =>
        {
            await using (var f = File.Create(outFile)) await context.Request.Body.CopyToAsync(f);
            return Results.Text("stored");
        });
        return app;
    }

    private static int _isolation;

    /// <summary>
    /// curl's multipart upload of <paramref name="file"/> (and a message) through the SOCKS port, in MB/s from the
    /// first byte sent to the answer. Each upload gets its own SOCKS credentials, so tor (IsolateSOCKSAuth) builds a
    /// fresh rendezvous circuit for it: the samples cover several paths through the network instead of one lucky or
    /// unlucky circuit; the circuit's set-up (time_pretransfer) is left out of the figure.
    /// </summary>
    /// <param name="circuit">SOCKS credentials to share one circuit between uploads to the same onion service; null: a fresh one.</param>
    private static async Task<double> CurlUploadAsync(string socks, string address, string file, string? host = null, string? circuit = null)
    {
        var isolation = circuit ?? "bench" + Interlocked.Increment(ref _isolation);
        var output = await RunAsync("curl", ["--silent", "--show-error", "--fail", "--max-time", "600", "--socks5-hostname", $"127.0.0.1:{socks}",
            "--proxy-user", $"{isolation}:x",
            .. host is null ? Array.Empty<string>() : ["-H", $"Host: {host}"],
            "-o", "/dev/null", "-w", "%{size_upload} %{time_pretransfer} %{time_total}", "-F", $"files=@{file}", "-F", "message=benchmark", $"http://{address}/"]);
        var parts = output.Trim().Split(' ');
        var bytes = double.Parse(parts[0], CultureInfo.InvariantCulture);
        var seconds = double.Parse(parts[2], CultureInfo.InvariantCulture) - double.Parse(parts[1], CultureInfo.InvariantCulture);
        return bytes / seconds / 1e6;
    }

    /// <summary>User + system CPU time of one process (/proc/PID/stat utime and stime, in clock ticks of 1/100 s).</summary>
    private static double CpuSeconds(int pid)
    {
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
    }

    private static async Task StopAsync(Process p)
    {
        if (p.HasExited) return;
        Process.Start("kill", ["-TERM", p.Id.ToString()])?.WaitForExit();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { p.Kill(entireProcessTree: true); await p.WaitForExitAsync(); }
    }

    private static async Task<string> RunAsync(string file, string[] args, Dictionary<string, string>? env = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var (k, v) in env ?? []) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)} exited with {p.ExitCode}: {await stderr}");
        return await stdout + await stderr;
    }

    private static double Median(List<double> values)
    {
        var sorted = values.Order().ToList();
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string FindRepo()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "OnionDrop.sln"))) return dir.FullName;
        throw new InvalidOperationException("OnionDrop.sln not found above " + AppContext.BaseDirectory);
    }
}
