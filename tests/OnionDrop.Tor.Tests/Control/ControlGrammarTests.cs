using OnionDrop.Tor.Control;

namespace OnionDrop.Tor.Tests.Control;

public class ControlGrammarTests
{
    [Test]
    public void Arguments_split_into_words_and_pairs_with_quoted_values()
    {
        var (words, pairs) = ControlGrammar.ParseArguments("NOTICE BOOTSTRAP PROGRESS=10 TAG=conn_done SUMMARY=\"Connected to a relay\"");
        Assert.That(words, Is.EqualTo(new[] { "NOTICE", "BOOTSTRAP" }));
        Assert.That(pairs["PROGRESS"], Is.EqualTo("10"));
        Assert.That(pairs["TAG"], Is.EqualTo("conn_done"));
        Assert.That(pairs["SUMMARY"], Is.EqualTo("Connected to a relay"));
    }

    [Test]
    public void Quoted_strings_unescape_C_escapes()
    {
        var (_, pairs) = ControlGrammar.ParseArguments(@"X=""a \""q\"" b\\c\n\t\101""");
        Assert.That(pairs["X"], Is.EqualTo("a \"q\" b\\c\n\tA"));
    }

    [Test]
    public void Octal_escapes_are_bytes_of_UTF_8()
    {
        // tor escapes every byte outside printable ASCII (esc_for_log): GETCONF DataDirectory for /tmp/dé is
        // "/tmp/d\303\251" (seen from tor 0.4.9), which read as one character per byte was "/tmp/dÃ©".
        var i = 0;
        Assert.That(ControlGrammar.ReadQuoted(@"""/srv/donn\303\251es/\342\202\254 \101""", ref i), Is.EqualTo("/srv/données/€ A"));
    }

    [Test]
    public void Quote_round_trips_through_the_parser()
    {
        const string value = "/path with \"quotes\"\\ and\nnewline";
        var i = 0;
        Assert.That(ControlGrammar.ReadQuoted(ControlGrammar.Quote(value), ref i), Is.EqualTo(value));
    }

    [Test]
    public void Unterminated_quote_is_refused()
    {
        Assert.Throws<TorControlProtocolException>(() => ControlGrammar.ParseArguments("A=\"open"));
    }

    [Test]
    public void Key_value_with_quoted_value()
    {
        Assert.That(ControlGrammar.ParseKeyValue("COOKIEFILE=\"/var/run/tor/control.authcookie\""),
            Is.EqualTo(("COOKIEFILE", "/var/run/tor/control.authcookie")));
        Assert.That(ControlGrammar.ParseKeyValue("net/listeners/socks="), Is.EqualTo(("net/listeners/socks", "")));
    }
}
