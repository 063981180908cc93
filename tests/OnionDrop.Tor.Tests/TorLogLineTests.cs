namespace OnionDrop.Tor.Tests;

/// <summary>tor's lines go to the operator's journal and status.json: nothing in them may follow a source's circuits.</summary>
public class TorLogLineTests
{
    [TestCase("Maximum streams per circuit limit reached on rendezvous circuit 2653832962; ignoring further streams.",
        "Maximum streams per circuit limit reached on rendezvous circuit [id]; ignoring further streams.")]
    [TestCase("Closing stream 4521 on circ 30551: end reason 6", "Closing stream [id] on circ [id]: end reason 6")]
    [TestCase("Tried for 120 seconds to get a connection to [scrubbed]:80. Giving up. (waiting for circuit)",
        "Tried for 120 seconds to get a connection to [scrubbed]:80. Giving up. (waiting for circuit)")]
    [TestCase("Unexpected circ_id=77 in cell", "Unexpected circ_id=[id] in cell")]
    public void Circuit_and_stream_numbers_never_reach_the_operator(string message, string kept)
    {
        var line = TorLogLine.Parse($"Dec 03 07:40:00.000 [warn] {message}");
        Assert.That(line.Severity, Is.EqualTo(OnionDrop.Tor.Control.TorSeverity.Warn));
        Assert.That(line.Message, Is.EqualTo(kept));
    }

    [Test]
    public void Other_numbers_are_kept()
    {
        Assert.That(TorLogLine.Parse("Dec 03 07:40:00.000 [notice] Bootstrapped 100% (done): Done").Message, Is.EqualTo("Bootstrapped 100% (done): Done"));
    }
}
