using System.Security.Cryptography;
using System.Text;
using OnionDrop.Testing;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor.Tests.Control;

public class TorControlClientTests
{
    [Test]
    public async Task GetInfo_reads_mid_and_data_lines()
    {
        await using var tor = new FakeTor();
        var call = tor.Client.GetInfoAsync(["version", "config-text"]);
        Assert.That(await tor.ReadCommandAsync(), Is.EqualTo("GETINFO version config-text"));
        await tor.SendAsync("250-version=0.4.9.11\n250+config-text=\nSocksPort 0\n..x\n.\n250 OK\n");
        var info = await call;
        Assert.That(info["version"], Is.EqualTo("0.4.9.11"));
        Assert.That(info["config-text"], Is.EqualTo("SocksPort 0\n.x"));
    }

    [Test]
    public async Task Error_reply_raises_with_tor_s_status_and_message()
    {
        await using var tor = new FakeTor();
        var call = tor.Client.GetInfoAsync("nonsense");
        await tor.ReadCommandAsync();
        await tor.SendAsync("552 Unrecognized key \"nonsense\"\n");
        var e = await Assert.ThrowsAsync<TorControlException>(() => call);
        Assert.That(e!.Status, Is.EqualTo(552));
        Assert.That(e.TorMessage, Does.Contain("Unrecognized key"));
    }

    [Test]
    public async Task Events_between_a_command_and_its_reply_go_to_the_event_stream()
    {
        await using var tor = new FakeTor();
        var call = tor.Client.SignalAsync("NEWNYM");
        Assert.That(await tor.ReadCommandAsync(), Is.EqualTo("SIGNAL NEWNYM"));
        await tor.SendAsync("650 STATUS_CLIENT NOTICE BOOTSTRAP PROGRESS=50 TAG=loading_descriptors SUMMARY=\"Loading relay descriptors\"\n");
        await tor.SendAsync("650 HS_DESC UPLOADED abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvw UNKNOWN $0123456789ABCDEF0123456789ABCDEF01234567~relay1\n");
        await tor.SendAsync("250 OK\n");
        await call;

        var first = await tor.Client.Events.ReadAsync();
        var bootstrap = ((StatusEvent)first).Bootstrap!;
        Assert.That(bootstrap.Progress, Is.EqualTo(50));
        Assert.That(bootstrap.Tag, Is.EqualTo("loading_descriptors"));
        Assert.That(bootstrap.Summary, Is.EqualTo("Loading relay descriptors"));
        var second = (HsDescEvent)await tor.Client.Events.ReadAsync();
        Assert.That(second.Action, Is.EqualTo("UPLOADED"));
        Assert.That(second.Address, Is.EqualTo("abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrstuvw"));
        Assert.That(second.HsDir, Does.StartWith("$0123"));
    }

    [Test]
    public async Task Replies_match_commands_in_order()
    {
        await using var tor = new FakeTor();
        var a = tor.Client.GetInfoAsync("a");
        var b = tor.Client.GetInfoAsync("b");
        await tor.ReadCommandAsync();
        await tor.ReadCommandAsync();
        await tor.SendAsync("250-a=1\n250 OK\n650 WARN something odd\n250-b=2\n250 OK\n");
        Assert.That(await a, Is.EqualTo("1"));
        Assert.That(await b, Is.EqualTo("2"));
        var log = (LogEvent)await tor.Client.Events.ReadAsync();
        Assert.That(log.Severity, Is.EqualTo(TorSeverity.Warn));
        Assert.That(log.Message, Is.EqualTo("something odd"));
    }

    [Test]
    public async Task Multi_line_event_keeps_its_data()
    {
        await using var tor = new FakeTor();
        await tor.SendAsync("650+NS\nr relay1 AAAA\ns Running\n.\n650 OK\n");
        var e = (UnrecognizedEvent)await tor.Client.Events.ReadAsync();
        Assert.That(e.Keyword, Is.EqualTo("NS"));
        Assert.That(e.Text, Is.EqualTo("r relay1 AAAA\ns Running"));
    }

    [Test]
    public async Task Pending_command_fails_when_tor_closes_the_connection()
    {
        await using var tor = new FakeTor();
        var call = tor.Client.GetInfoAsync("version");
        await tor.ReadCommandAsync();
        await tor.SendAsync("250-version=0.4");
        await tor.CloseAsync();
        await Assert.ThrowsAsync<IOException>(() => call);
        await tor.Client.Completion;
        Assert.That(tor.Client.Failure, Is.InstanceOf<TorControlProtocolException>());
        await Assert.ThrowsAsync<IOException>(() => tor.Client.SignalAsync("NEWNYM"));
    }

    [Test]
    public async Task Commands_cannot_smuggle_a_second_line()
    {
        await using var tor = new FakeTor();
        await Assert.ThrowsAsync<ArgumentException>(() => tor.Client.SendAsync("GETINFO version\r\nSIGNAL HALT"));
    }

    [Test]
    public void SafeCookie_hashes_match_an_independent_vector()
    {
        // Computed with Python's hmac module from control-spec §3.24's definitions.
        var (server, client) = TorControlClient.SafeCookieHashes(
            Enumerable.Range(0, 32).Select(i => (byte)i).ToArray(), Enumerable.Repeat((byte)0x11, 32).ToArray(), Enumerable.Repeat((byte)0x22, 32).ToArray());
        Assert.That(Convert.ToHexString(server), Is.EqualTo("2AECBF4D284BEFDDBBACC3817B41959EDA061AC7E156DB0C734CB28AA5E903ED"));
        Assert.That(Convert.ToHexString(client), Is.EqualTo("EEA571786A3FD103B6AA1FFA46249C4C850C509D0C84C550ED9E41477511D2BA"));
    }

    [Test]
    public async Task Authenticate_prefers_SAFECOOKIE_and_answers_the_challenge()
    {
        using var dir = new TempDirectory();
        var cookie = RandomNumberGenerator.GetBytes(32);
        var cookiePath = dir.Combine("control_auth_cookie");
        await File.WriteAllBytesAsync(cookiePath, cookie);
        var serverNonce = RandomNumberGenerator.GetBytes(32);

        await using var tor = new FakeTor();
        var auth = tor.Client.AuthenticateAsync();
        Assert.That(await tor.ReadCommandAsync(), Is.EqualTo("PROTOCOLINFO 1"));
        await tor.SendAsync($"250-PROTOCOLINFO 1\n250-AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE={ControlGrammar.Quote(cookiePath)}\n250-VERSION Tor=\"0.4.9.11\"\n250 OK\n");

        var challenge = await tor.ReadCommandAsync();
        Assert.That(challenge, Does.StartWith("AUTHCHALLENGE SAFECOOKIE "));
        var clientNonce = Convert.FromHexString(challenge.Split(' ')[2]);
        byte[] message = [.. cookie, .. clientNonce, .. serverNonce];
        var serverHash = HMACSHA256.HashData(Encoding.ASCII.GetBytes("Tor safe cookie authentication server-to-controller hash"), message);
        var clientHash = HMACSHA256.HashData(Encoding.ASCII.GetBytes("Tor safe cookie authentication controller-to-server hash"), message);
        await tor.SendAsync($"250 AUTHCHALLENGE SERVERHASH={Convert.ToHexString(serverHash)} SERVERNONCE={Convert.ToHexString(serverNonce)}\n");

        Assert.That(await tor.ReadCommandAsync(), Is.EqualTo("AUTHENTICATE " + Convert.ToHexString(clientHash)));
        await tor.SendAsync("250 OK\n");
        await auth;
    }

    [Test]
    public async Task Authenticate_refuses_a_tor_that_does_not_know_our_cookie()
    {
        using var dir = new TempDirectory();
        var cookiePath = dir.Combine("cookie");
        await File.WriteAllBytesAsync(cookiePath, RandomNumberGenerator.GetBytes(32));
        await using var tor = new FakeTor();
        var auth = tor.Client.AuthenticateAsync();
        await tor.ReadCommandAsync();
        await tor.SendAsync($"250-AUTH METHODS=SAFECOOKIE COOKIEFILE={ControlGrammar.Quote(cookiePath)}\n250 OK\n");
        await tor.ReadCommandAsync();
        await tor.SendAsync($"250 AUTHCHALLENGE SERVERHASH={new string('A', 64)} SERVERNONCE={new string('B', 64)}\n");
        var e = await Assert.ThrowsAsync<TorAuthenticationException>(() => auth);
        Assert.That(e!.Message, Does.Contain("server hash"));
    }

    [Test]
    public async Task Authenticate_falls_back_to_COOKIE_and_reports_tor_s_refusal()
    {
        using var dir = new TempDirectory();
        var cookie = RandomNumberGenerator.GetBytes(32);
        var cookiePath = dir.Combine("cookie");
        await File.WriteAllBytesAsync(cookiePath, cookie);
        await using var tor = new FakeTor();
        var auth = tor.Client.AuthenticateAsync();
        await tor.ReadCommandAsync();
        await tor.SendAsync($"250-AUTH METHODS=COOKIE COOKIEFILE={ControlGrammar.Quote(cookiePath)}\n250 OK\n");
        Assert.That(await tor.ReadCommandAsync(), Is.EqualTo("AUTHENTICATE " + Convert.ToHexString(cookie)));
        await tor.SendAsync("515 Authentication failed: Wrong length on authentication cookie.\n");
        var e = await Assert.ThrowsAsync<TorAuthenticationException>(() => auth);
        Assert.That(e!.Message, Does.Contain("515 Authentication failed"));
    }

    [Test]
    public async Task Authenticate_names_an_unreadable_cookie()
    {
        await using var tor = new FakeTor();
        var auth = tor.Client.AuthenticateAsync();
        await tor.ReadCommandAsync();
        await tor.SendAsync("250-AUTH METHODS=SAFECOOKIE COOKIEFILE=\"/nonexistent/control_auth_cookie\"\n250 OK\n");
        var e = await Assert.ThrowsAsync<TorAuthenticationException>(() => auth);
        Assert.That(e!.Message, Does.Contain("/nonexistent/control_auth_cookie"));
    }

    [Test]
    public async Task AddOnion_sends_key_flags_options_ports_and_reads_the_service_id()
    {
        await using var tor = new FakeTor();
        var call = tor.Client.AddOnionAsync("NEW:ED25519-V3", ["80,unix:/data/web.sock"], ["DiscardPK"],
            [new("PoWDefensesEnabled", "1"), new("MaxStreams", "100")]);
        Assert.That(await tor.ReadCommandAsync(),
            Is.EqualTo("ADD_ONION NEW:ED25519-V3 Flags=DiscardPK PoWDefensesEnabled=1 MaxStreams=100 Port=80,unix:/data/web.sock"));
        await tor.SendAsync("250-ServiceID=exampleexampleexampleexampleexampleexampleexampleexampl\n250-PrivateKey=ED25519-V3:S0VZ\n250 OK\n");
        var result = await call;
        Assert.That(result.ServiceId, Is.EqualTo("exampleexampleexampleexampleexampleexampleexampleexampl"));
        Assert.That(result.OnionAddress, Does.EndWith(".onion"));
        Assert.That(result.PrivateKey, Is.EqualTo("ED25519-V3:S0VZ"));
    }

    [Test]
    public async Task Bootstrap_phase_and_status_events_parse()
    {
        var phase = BootstrapStatus.ParsePhase("WARN BOOTSTRAP PROGRESS=5 TAG=conn SUMMARY=\"Connecting to a relay\" WARNING=\"Connection refused\" REASON=CONNECTREFUSED COUNT=3 RECOMMENDATION=ignore");
        Assert.That(phase.Progress, Is.EqualTo(5));
        Assert.That(phase.Severity, Is.EqualTo(TorSeverity.Warn));
        Assert.That(phase.Warning, Is.EqualTo("Connection refused"));
        Assert.That(phase.Reason, Is.EqualTo("CONNECTREFUSED"));
        Assert.That(phase.Problem, Is.EqualTo("Connection refused at 5% (Connecting to a relay; tor's reason: CONNECTREFUSED)"));
        // A bare reason keyword as the warning (what tor says with no network) is put in words.
        var bare = BootstrapStatus.ParsePhase("WARN BOOTSTRAP PROGRESS=14 TAG=handshake SUMMARY=\"Handshaking with a relay\" WARNING=\"DONE\" REASON=DONE COUNT=1 RECOMMENDATION=warn");
        Assert.That(bare.Problem, Is.EqualTo("a relay closed the connection at 14% (Handshaking with a relay; tor's reason: DONE)"));
        Assert.That(BootstrapStatus.ParsePhase("NOTICE BOOTSTRAP PROGRESS=100 TAG=done SUMMARY=\"Done\"").Problem, Is.Null);

        await using var tor = new FakeTor();
        await tor.SendAsync("650 STATUS_GENERAL WARN CLOCK_SKEW SKEW=-300 SOURCE=CONSENSUS\n650 HS_DESC FAILED addr NO_AUTH $AB~r DESCID REASON=UPLOAD_REJECTED\n");
        var general = (StatusEvent)await tor.Client.Events.ReadAsync();
        Assert.That((general.Keyword, general.Severity, general.Action, general.Arguments["SKEW"]), Is.EqualTo(("STATUS_GENERAL", TorSeverity.Warn, "CLOCK_SKEW", "-300")));
        Assert.That(general.Bootstrap, Is.Null);
        var failed = (HsDescEvent)await tor.Client.Events.ReadAsync();
        Assert.That((failed.Action, failed.DescriptorId, failed.Reason), Is.EqualTo(("FAILED", "DESCID", "UPLOAD_REJECTED")));
    }
}
