using System.Diagnostics;
using OnionDrop.Testing;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor.Tests;

/// <summary>The check of what tor runs with, on replies shaped as a real tor gives them (captured from tor 0.4.9).</summary>
public sealed class RunningConfigurationTests
{
    private static readonly TorrcValues Values = new("/d", 1);

    private static Dictionary<string, IReadOnlyList<string>> Listeners(string? extraKind = null, string? extraAddress = null)
    {
        var listeners = RunningConfiguration.ListenerKeys.ToDictionary(k => k, _ => (IReadOnlyList<string>)[]);
        listeners["net/listeners/control"] = ["unix:/d/tor/control.sock"];
        if (extraKind is not null) listeners["net/listeners/" + extraKind] = [.. listeners["net/listeners/" + extraKind], extraAddress!];
        return listeners;
    }

    private static List<KeyValuePair<string, string>> Options(params (string Key, string Value)[] changes)
    {
        var options = new List<KeyValuePair<string, string>>
        {
            new("HiddenServiceDir", "/d/tor/onion-service"), new("HiddenServicePort", "80 unix:/d/web.sock"),
            new("HiddenServicePoWDefensesEnabled", "1"), new("HiddenServiceMaxStreams", "20"),
            new("HiddenServiceSingleHopMode", "0"), new("HiddenServiceNonAnonymousMode", "0"),
            new("SafeLogging", "1"), new("CookieAuthentication", "1"), new("HeartbeatPeriod", "0"),
            new("ProtocolWarnings", "0"),
        };
        foreach (var (key, value) in changes)
        {
            if (key.StartsWith('+')) options.Add(new(key[1..], value));
            else if (key.StartsWith('-')) options.RemoveAll(o => o.Key == key[1..]);
            else options[options.FindIndex(o => o.Key == key)] = new(key, value);
        }
        return options;
    }

    [Test]
    public void What_the_template_asks_for_passes() =>
        Assert.That(RunningConfiguration.Problems(Values, Listeners(), Options()), Is.Empty);

    [TestCase("control", "127.0.0.1:28764", "a control listener on 127.0.0.1:28764")]
    [TestCase("socks", "127.0.0.1:9050", "a socks listener")]
    [TestCase("httptunnel", "127.0.0.1:8118", "a httptunnel listener")]
    [TestCase("metrics", "127.0.0.1:9035", "a metrics listener")]
    public void Any_other_listener_stops_the_start(string kind, string address, string named) =>
        Assert.That(RunningConfiguration.Problems(Values, Listeners(kind, address), Options()), Has.Some.Contains(named));

    [Test]
    public void A_second_onion_service_or_port_stops_the_start()
    {
        Assert.That(RunningConfiguration.Problems(Values, Listeners(), Options(("+HiddenServiceDir", "/d/tor/hs2"), ("+HiddenServicePort", "22 127.0.0.1:22"))),
            Has.Some.Contains("onion services in /d/tor/onion-service, /d/tor/hs2").And.Some.Contains("22 127.0.0.1:22"));
        Assert.That(RunningConfiguration.Problems(Values, Listeners(), Options(("+HiddenServicePort", "22 127.0.0.1:22"))),
            Has.Some.Contains("onion service ports"));
    }

    [TestCase("HiddenServiceNonAnonymousMode", "1")]
    [TestCase("HiddenServiceSingleHopMode", "1")]
    [TestCase("SafeLogging", "0")]
    [TestCase("CookieAuthentication", "0")]
    [TestCase("HeartbeatPeriod", "21600")]
    [TestCase("ProtocolWarnings", "1")]
    [TestCase("HiddenServicePoWDefensesEnabled", "0")]
    [TestCase("-HiddenServicePoWDefensesEnabled", "")]   // tor's default, 0, is not listed in HiddenServiceOptions
    public void A_setting_off_its_required_value_stops_the_start(string key, string value) =>
        Assert.That(RunningConfiguration.Problems(Values, Listeners(), Options((key, value))), Has.Some.StartWith(key.TrimStart('-')));

    [Test]
    public void A_log_below_notice_stops_the_start()
    {
        Assert.That(RunningConfiguration.Problems(Values, Listeners(), Options(("+Log", "notice stdout"))), Is.Empty);
        Assert.That(RunningConfiguration.Problems(Values, Listeners(), Options(("+Log", "notice stdout"), ("+Log", "[circ]debug-err stdout"))),
            Has.Some.StartWith("Log [circ]debug-err stdout"));
    }

    [Test]
    public async Task A_second_control_socket_of_a_real_tor_stops_the_start()
    {
        // tor lists a kind's listeners on one line, each a QuotedString: net/listeners/control="unix:/d/tor/control.sock"
        // "unix:/d/tor/second.sock". Read as one key=value, only the first was seen, and the daemon's own socket passed.
        using var data = new TempDirectory();
        var second = data.Combine("tor", "second.sock");
        Assert.That(await ProblemsOfARealTorAsync(data, $"ControlSocket {second}"), Is.EqualTo(new[] { $"a control listener on unix:{second}" }));
    }

    [Test]
    public async Task Protocol_warnings_in_a_real_tor_stop_the_start()
    {
        // ProtocolWarnings 1 raises tor's info-level notes about relays and circuits that break the protocol to warn,
        // which the daemon forwards to the journal.
        using var data = new TempDirectory();
        Assert.That(await ProblemsOfARealTorAsync(data, "ProtocolWarnings 1"), Is.EqualTo(new[] { "ProtocolWarnings 1 (must be 0)" }));
    }

    /// <summary>Runs a real tor from a torrc of our own (past the template's check) with <paramref name="extra"/> lines, and asks what the running check finds.</summary>
    private static async Task<IReadOnlyList<string>> ProblemsOfARealTorAsync(TempDirectory data, params string[] extra)
    {
        var values = new TorrcValues(data.Path, Environment.ProcessId);
        Directory.CreateDirectory(values.OnionServiceDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(values.TorDir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var torrc = data.Combine("torrc");
        File.WriteAllLines(torrc,
        [
            "SocksPort 0", $"DataDirectory {values.TorDir}", $"ControlSocket {values.ControlSocket}",
            "CookieAuthentication 1", "Log notice stdout", "HeartbeatPeriod 0", OfflineTor.DirAuthority, $"__OwningControllerProcess {Environment.ProcessId}",
            $"HiddenServiceDir {values.OnionServiceDir}", $"HiddenServicePort 80 unix:{values.WebSocket}", "HiddenServicePoWDefensesEnabled 1",
            .. extra,
        ]);
        File.WriteAllText(data.Combine("defaults"), "");
        using var tor = Process.Start(ChildProcess.StartInfo(TorProcess.ResolveTor("tor"), ["-f", torrc, "--defaults-torrc", data.Combine("defaults")]))!;
        try
        {
            for (var i = 0; i < 100 && !File.Exists(values.ControlSocket); i++) await Task.Delay(100);
            await using var control = await TorControlClient.ConnectUnixAsync(values.ControlSocket);
            await control.AuthenticateAsync();
            return await RunningConfiguration.ProblemsAsync(control, values);
        }
        finally
        {
            tor.Kill();
            await tor.WaitForExitAsync();
        }
    }
}
