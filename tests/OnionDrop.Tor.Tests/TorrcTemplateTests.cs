namespace OnionDrop.Tor.Tests;

public class TorrcTemplateTests
{
    private static readonly TorrcValues Values = new("/var/lib/oniondrop", 4242);
    private static string Template => TorrcTemplate.LoadDefault();

    [Test]
    public void Shipped_template_renders_with_the_security_critical_lines()
    {
        var torrc = TorrcTemplate.Render(Template, Values, []);
        Assert.That(torrc, Does.Contain("\nSocksPort 0\n"));
        Assert.That(torrc, Does.Contain("\nControlSocket /var/lib/oniondrop/tor/control.sock\n"));
        Assert.That(torrc, Does.Contain("\nHiddenServiceDir /var/lib/oniondrop/tor/onion-service\n"));
        Assert.That(torrc, Does.Contain("\nHiddenServicePort 80 unix:/var/lib/oniondrop/web.sock\n"));
        Assert.That(torrc, Does.Contain("\n__OwningControllerProcess 4242\n"));
        Assert.That(torrc, Does.Contain("\nHiddenServicePoWDefensesEnabled 1\n"));
        Assert.That(torrc, Does.Not.Contain("{{"));
    }

    [Test]
    public void The_web_socket_may_live_outside_the_data_directory()
    {
        var torrc = TorrcTemplate.Render(Template, Values with { WebSocket = "/run/oniondrop/web.sock" }, []);
        Assert.That(torrc, Does.Contain("\nHiddenServicePort 80 unix:/run/oniondrop/web.sock\n"));
        var e = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template, Values with { WebSocket = "/run/oniondrop/web.sock" },
            ["HiddenServicePort 80 unix:/var/lib/oniondrop/web.sock"]));
        Assert.That(e!.Message, Does.Contain("/run/oniondrop/web.sock"));
    }

    [Test]
    public void Extra_lines_are_appended()
    {
        var torrc = TorrcTemplate.Render(Template, Values, ["TestingTorNetwork 1", "DirAuthority auth1 ..."]);
        Assert.That(torrc, Does.EndWith("TestingTorNetwork 1\nDirAuthority auth1 ...\n"));
    }

    [TestCase("SocksPort 9050", "SocksPort")]
    [TestCase("ControlPort 9051", "ControlPort")]
    [TestCase("HashedControlPassword 16:ABC", "HashedControlPassword")]
    [TestCase("HiddenServicePoWDefensesEnabled 0", "HiddenServicePoWDefensesEnabled")]
    [TestCase("ControlSocketsGroupWritable 1", "ControlSocketsGroupWritable")]
    [TestCase("ORPort 9001", "ORPort")]
    [TestCase("HiddenServiceNonAnonymousMode 1", "HiddenServiceNonAnonymousMode")]
    [TestCase("HiddenServicePort 22 127.0.0.1:22", "HiddenServicePort")]
    [TestCase("HiddenServiceDir /tmp/other", "HiddenServiceDir")]
    [TestCase("%include /etc/tor/torrc.d", "%include")]
    // Other listeners, and the prefixed forms tor reads as the same option (found in a review: they got through).
    [TestCase("DNSPort 127.0.0.1:5353", "DNSPort")]
    [TestCase("TransPort 9040", "TransPort")]
    [TestCase("NATDPort 9041", "NATDPort")]
    [TestCase("HTTPTunnelPort 127.0.0.1:28763", "HTTPTunnelPort")]
    [TestCase("MetricsPort 127.0.0.1:9035", "MetricsPort")]
    [TestCase("DirPort 9030", "DirPort")]
    [TestCase("ExtORPort auto", "ExtORPort")]
    [TestCase("__ControlPort 127.0.0.1:28764", "ControlPort")]
    [TestCase("__SocksPort 9150", "SocksPort")]
    [TestCase("+HiddenServicePort 22 127.0.0.1:22", "HiddenServicePort")]
    [TestCase("+SocksPort 9050", "SocksPort")]
    [TestCase("/SocksPort", "SocksPort")]
    [TestCase("/HiddenServicePoWDefensesEnabled", "HiddenServicePoWDefensesEnabled")]
    // Abbreviations tor resolves to the first option they begin, and '#' ending the key (found in a re-check).
    [TestCase("ControlP 127.0.0.1:28764", "ControlPort")]
    [TestCase("HiddenServicePor 22 127.0.0.1:22", "HiddenServicePort")]
    [TestCase("HiddenServiceSingleHop 1", "HiddenServiceSingleHopMode")]
    [TestCase("HiddenServiceNonAnonymous 1", "HiddenServiceNonAnonymousMode")]
    [TestCase("__ControlP 127.0.0.1:28764", "ControlPort")]
    [TestCase("HTTPTunnelP 127.0.0.1:8118", "HTTPTunnelPort")]
    [TestCase("CookieAuthentication#", "CookieAuthentication")]
    [TestCase("SafeLogging 0", "SafeLogging")]
    [TestCase("Log debug stdout", "Log debug stdout")]
    [TestCase("Log [circ]info-err file /var/log/tor.log", "info")]
    [TestCase("l info stdout", "info")]
    [TestCase("Lo debug stdout", "info and debug")]
    [TestCase("Log notice [circ]debug stdout", "info and debug")]
    [TestCase("__HashedControlSessionPassword 16:ABC", "HashedControlSessionPassword")]
    [TestCase("CookieAuthFile /tmp/cookie", "absence of CookieAuthFile")]
    [TestCase("HeartbeatPeriod 30 minutes", "HeartbeatPeriod")]
    // Raises tor's info-level notes on other parties' protocol violations, which name circuits and relays, to warn.
    [TestCase("ProtocolWarnings 1", "ProtocolWarnings")]
    [TestCase("ProtocolW 1", "ProtocolWarnings")]
    public void Contradicting_lines_are_refused_by_name(string line, string named)
    {
        var fromTemplate = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template + line + "\n", Values, []));
        Assert.That(fromTemplate!.Message, Does.Contain(named).And.Contain("torrc.template line"));
        var fromExtra = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template, Values, ["TestingTorNetwork 1", line]));
        Assert.That(fromExtra!.Message, Does.Contain("TorExtraConfig line 2").And.Contain(named));
    }

    [TestCase("SocksPort 0")]
    [TestCase("CookieAuthentication 1")]
    [TestCase("HiddenServicePoWDefensesEnabled 1")]
    [TestCase("Log notice stdout")]
    [TestCase("HeartbeatPeriod 0")]
    public void Missing_required_lines_are_refused_by_name(string line)
    {
        var template = Template.Replace("\n" + line + "\n", "\n");
        var e = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(template, Values, []));
        Assert.That(e!.Message, Does.Contain("lacks the required line").And.Contain(line.Split(' ')[0]));
    }

    [TestCase("DNSPort 0")]
    [TestCase("+SocksPort 0")]
    [TestCase("SocksPort 0 # off, as required")]
    [TestCase("Log notice file /var/log/tor/info.log")]
    [TestCase("__OwningControllerProcess 4242")]
    [TestCase("ProtocolWarnings 0")]
    public void Prefixed_or_zeroed_lines_that_agree_are_accepted(string line)
    {
        var template = line.StartsWith("__Owning") ? Template.Replace("__OwningControllerProcess {{OWNER_PID}}", line) : Template + line + "\n";
        Assert.DoesNotThrow(() => TorrcTemplate.Render(template, Values with { OwnerPid = 4242 }, []));
    }

    [Test]
    public void Same_value_written_differently_is_accepted()
    {
        var template = Template.Replace("SocksPort 0", "socksport   0").Replace("ControlSocket {{DATA_DIR}}/tor/control.sock", "ControlSocket \"{{DATA_DIR}}/tor/control.sock\"");
        Assert.DoesNotThrow(() => TorrcTemplate.Render(template, Values, []));
    }

    [TestCase("/srv/drop box", "a space")]
    [TestCase("/srv/drop#1", "'#'")]
    [TestCase("/srv/drop\tbox", "a space")]
    [TestCase("/srv/drop\nControlPort 9051", "a control character")]
    public void A_data_directory_tor_would_misread_is_refused_by_name(string dataDir, string named)
    {
        // tor reads a path in torrc up to the first space ("Unrecognized ControlSocketPort option" was all it said),
        // and up to a '#'; a line break would start another option.
        var e = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template, new TorrcValues(dataDir, 1), []));
        Assert.That(e!.Message, Does.StartWith("DataDir ").And.Contain(named).And.Contain("choose a path without").And.Not.Contain("\n"));
        var socket = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template, Values with { WebSocket = dataDir + "/web.sock" }, []));
        Assert.That(socket!.Message, Does.StartWith("WebSocketDirectory ").And.Contain(named));
    }

    [TestCase("ContactInfo x \\")]
    [TestCase("ContactInfo x\\")]
    [TestCase("ContactInfo x\\\r")]
    public void A_line_tor_would_join_to_the_next_is_refused(string line)
    {
        // tor would read "ContactInfo x SocksPort 0" (seen with tor 0.4.9: GETCONF ContactInfo=x SocksPort 0, and a SOCKS
        // listener on 127.0.0.1:9050), while each line on its own passed.
        var e = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template.Replace("\nSocksPort 0\n", "\n" + line + "\nSocksPort 0\n"), Values, []));
        Assert.That(e!.Message, Does.Contain("torrc.template line").And.Contain("next line"));
        var extra = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template, Values, [line, "Log info stdout"]));
        Assert.That(extra!.Message, Does.Contain("TorExtraConfig line 1").And.Contain("next line"));
        Assert.DoesNotThrow(() => TorrcTemplate.Render(Template, Values, ["ContactInfo x # a comment may end in \\"]));
    }

    [Test]
    public void A_line_with_a_NUL_is_refused()
    {
        // tor stops reading its torrc at a NUL (tor 0.4.9: "SocksPort 9050" after "ContactInfo x\0" was not in force), so
        // every line after it in the template would be checked here and not be in force there.
        var e = Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template.Replace("\nSocksPort 0\n", "\nContactInfo x\0\nSocksPort 0\n"), Values, []));
        Assert.That(e!.Message, Does.Contain("torrc.template line").And.Contain("NUL"));
        Assert.That(e.Message.Contains('\0'), Is.False, "the message shows it as \\0");
        Assert.Throws<TorConfigurationException>(() => TorrcTemplate.Render(Template, Values, ["ContactInfo x\0"]));
    }
}
