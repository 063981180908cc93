using System.IO.Pipelines;
using System.Text;
using OnionDrop.Tor.Control;

namespace OnionDrop.Tor.Tests.Control;

public class ControlReplyReaderTests
{
    private static async Task<List<ControlReply>> ReadAll(string wire)
    {
        var pipe = new Pipe();
        await pipe.Writer.WriteAsync(Encoding.UTF8.GetBytes(wire));
        await pipe.Writer.CompleteAsync();
        var reader = new ControlReplyReader(pipe.Reader);
        var replies = new List<ControlReply>();
        while (await reader.ReadAsync() is { } r) replies.Add(r);
        return replies;
    }

    [Test]
    public async Task Single_line_reply()
    {
        var replies = await ReadAll("250 OK\r\n");
        Assert.That(replies, Has.Count.EqualTo(1));
        Assert.That(replies[0].Status, Is.EqualTo(250));
        Assert.That(replies[0].Message, Is.EqualTo("OK"));
        Assert.That(replies[0].IsSuccess, Is.True);
    }

    [Test]
    public async Task Mid_reply_lines_belong_to_one_reply()
    {
        var replies = await ReadAll("250-version=0.4.9.11\r\n250-config-file=/etc/tor/torrc\r\n250 OK\r\n552 Unrecognized key \"x\"\r\n");
        Assert.That(replies, Has.Count.EqualTo(2));
        Assert.That(replies[0].Lines.Select(l => l.Text), Is.EqualTo(new[] { "version=0.4.9.11", "config-file=/etc/tor/torrc", "OK" }));
        Assert.That(replies[0].Lines.Select(l => l.Separator), Is.EqualTo(new[] { '-', '-', ' ' }));
        Assert.That(replies[1].Status, Is.EqualTo(552));
        Assert.That(replies[1].IsSuccess, Is.False);
    }

    [Test]
    public async Task Data_reply_is_dot_unstuffed_and_ends_at_a_lone_dot()
    {
        var replies = await ReadAll("250+config-text=\r\nSocksPort 0\r\n..hidden\r\n..\r\n.\r\n250 OK\r\n");
        var line = replies.Single().Lines[0];
        Assert.That(line.Separator, Is.EqualTo('+'));
        Assert.That(line.Text, Is.EqualTo("config-text="));
        Assert.That(line.Data, Is.EqualTo("SocksPort 0\n.hidden\n."));
    }

    [Test]
    public async Task Bare_LF_is_accepted()
    {
        var replies = await ReadAll("250-a=1\n250 OK\n");
        Assert.That(replies.Single().Lines, Has.Count.EqualTo(2));
    }

    [TestCase("25 OK\r\n")]
    [TestCase("250xOK\r\n")]
    [TestCase("abc OK\r\n")]
    public async Task Malformed_lines_are_refused(string wire)
    {
        await Assert.ThrowsAsync<TorControlProtocolException>(() => ReadAll(wire));
    }

    [TestCase("250-a=1\r\n")]
    [TestCase("250+a=\r\nbody\r\n")]
    [TestCase("250 O")]
    public async Task Connection_closing_mid_reply_is_an_error(string wire)
    {
        await Assert.ThrowsAsync<TorControlProtocolException>(() => ReadAll(wire));
    }

    [Test]
    public async Task Lines_split_across_many_writes_reassemble()
    {
        var pipe = new Pipe();
        var reader = new ControlReplyReader(pipe.Reader);
        var read = reader.ReadAsync().AsTask();
        foreach (var b in Encoding.UTF8.GetBytes("250-a=\"x y\"\r\n250 OK\r\n"))
        {
            await pipe.Writer.WriteAsync(new[] { b });
            await Task.Yield();
        }
        var reply = await read;
        Assert.That(reply!.Lines[0].Text, Is.EqualTo("a=\"x y\""));
    }
}
