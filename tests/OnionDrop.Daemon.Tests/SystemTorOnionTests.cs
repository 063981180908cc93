using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using OnionDrop.Testing;
using static OnionDrop.Daemon.Tests.DebianTor;

namespace OnionDrop.Daemon.Tests;

/// <summary>
/// `--tor system` all the way through tor itself: on a private Tor network (scripts/tornet, ports 17200+, or 17600+ / 17800+ when taken), a tor
/// run the Debian way as debian-tor publishes the daemon's service (the daemon runs as a third, throwaway user),
/// and a client's curl through the network's SOCKS port uploads a file that the journalist's key opens
/// byte for byte. So tor, as debian-tor, connected to /run/oniondrop-style web.sock for a real stream.
/// </summary>
[NonParallelizable, Category("EndToEnd")]
public class SystemTorOnionTests
{
    private const int BasePort = 17200;
    private TempDirectory _work = null!;
    private string _network = null!;
    private DebianTor _tor = null!;

    private static string Tornet => Path.Combine(RepoPaths.Root, "scripts", "tornet");

    [OneTimeSetUp]
    public async Task StartNetworkAndSystemTor()
    {
        _work = new TempDirectory("oniondrop-systemtor-net-");
        _network = _work.Combine("tornet");
        // Another run of this suite (or a soak) may hold the usual range: take the first one whose 50 ports are free.
        ProcessResult? up = null;
        foreach (var basePort in new[] { BasePort, BasePort + 400, BasePort + 600 }.Where(PortsFree).Take(2))
        {
            var psi = ChildProcess.StartInfo(Tornet, ["up", _network]);
            psi.Environment["TORNET_BASE_PORT"] = basePort.ToString();
            psi.Environment["TORNET_OWNER_PID"] = Environment.ProcessId.ToString();
            up = await ChildProcess.RunAsync(psi, TimeSpan.FromMinutes(3));
            if (up.ExitCode == 0) break;
            TestContext.Progress.WriteLine($"scripts/tornet up on ports {basePort}+ failed, trying another range\n{up}");
            await ChildProcess.RunAsync(Tornet, ["down", _network]);
        }
        Assert.That(up?.ExitCode, Is.EqualTo(0), "scripts/tornet up failed\n" + (up?.ToString() ?? "no free port range"));
        var join = File.ReadAllLines(Path.Combine(_network, "join.torrc")).Where(l => l.Length > 0 && !l.StartsWith('#'));
        _tor = await DebianTor.StartAsync(join);
    }

    [OneTimeTearDown]
    public async Task StopEverything()
    {
        if (_tor is not null) await _tor.DisposeAsync();
        if (_network is not null) await ChildProcess.RunAsync(Tornet, ["down", _network]);
        _work?.Dispose();
    }

    [Test]
    public async Task A_source_s_upload_reaches_the_daemon_through_debian_s_tor()
    {
        var key = _work.Combine("journalist.key");
        var keygen = await Oniondrop.RunAsync(["keygen", "-o", key]);
        Assert.That(keygen.ExitCode, Is.Zero, keygen.ToString());
        var recipient = Regex.Match(keygen.Stdout + keygen.Stderr, "odpk1[a-z0-9]+").Value;

        var (data, runDir) = await _tor.DaemonDirectoriesAsync("daemon");
        await using var daemon = await ReadableByTheDaemon(() => DaemonProcess.StartAsync(data, recipient, tor: "system", settings: new Dictionary<string, object>
        {
            ["SystemTorControlSocket"] = _tor.ControlSocket, ["WebSocketDirectory"] = runDir, ["WebSocketGroup"] = User,
        }, wrapper: _tor.AsDaemonUser()));
        Assert.That(PosixProcess.Uid(daemon.Pid), Is.EqualTo(_tor.DaemonUid));
        var address = await PublishedAddressAsync(data, daemon, TimeSpan.FromMinutes(3));

        var file = _work.Combine("leak.bin");
        var bytes = RandomNumberGenerator.GetBytes(1 << 20);
        await File.WriteAllBytesAsync(file, bytes);
        var socks = File.ReadAllText(Path.Combine(_network, "socks-port")).Trim();
        var curl = await ChildProcess.RunAsync("curl", ["--silent", "--show-error", "--fail", "--max-time", "180",
            "--socks5-hostname", $"127.0.0.1:{socks}", "-F", $"files=@{file}", "-F", "message=through debian-tor",
            $"http://{address}/"], TimeSpan.FromMinutes(4));
        Assert.That(curl.ExitCode, Is.Zero, curl.ToString() + "\n--- daemon\n" + daemon.Output);
        var reference = Regex.Match(curl.Stdout, "id=\"reference\">([A-Z0-9-]+)<");
        Assert.That(reference.Success, Is.True, "no reference in the receipt:\n" + curl.Stdout);

        var blob = Path.Combine(data, "blobs", reference.Groups[1].Value + ".sealed");
        var opened = _work.Combine("opened");
        Directory.CreateDirectory(opened);
        var open = await Oniondrop.RunAsync(["open", "-k", key, "-o", opened, blob]);
        Assert.That(open.ExitCode, Is.Zero, open.ToString());
        var openedFile = Directory.GetFiles(opened, "leak.bin", SearchOption.AllDirectories).Single();
        Assert.That(await File.ReadAllBytesAsync(openedFile), Is.EqualTo(bytes));

        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        Assert.That(_tor.HasExited, Is.False, "the system tor is not the daemon's to stop");
    }

    private static bool PortsFree(int basePort) => Enumerable.Range(basePort, 50).All(port =>
    {
        try
        {
            using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, port);
            listener.Start();
            return true;
        }
        catch (System.Net.Sockets.SocketException) { return false; }
    });

    /// <summary>status.json's tor.onionAddress once tor.published (HS_DESC UPLOADED for our service).</summary>
    private static async Task<string> PublishedAddressAsync(string data, DaemonProcess daemon, TimeSpan timeout)
    {
        var path = Path.Combine(data, "status.json");
        var deadline = DateTime.UtcNow + timeout;
        var last = "(no status.json)";
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                last = await File.ReadAllTextAsync(path);
                var tor = JsonDocument.Parse(last).RootElement.GetProperty("tor");
                if (tor.GetProperty("published").GetBoolean()) return tor.GetProperty("onionAddress").GetString()!;
            }
            catch (Exception e) when (e is JsonException or IOException or KeyNotFoundException or InvalidOperationException) { }
            await Task.Delay(250);
        }
        throw new TimeoutException($"not published within {timeout}; status.json:\n{last}\n--- daemon output\n{daemon.Output}");
    }
}
