using System.Text;

namespace OnionDrop.Sealing.Tests;

public class CiphertextOnlyTests
{
    [Test]
    public async Task NoPlaintextNameMessageOrContentAppearsInTheBlob()
    {
        using var key = JournalistKey.Generate();
        var marker = "WHISTLE-" + Guid.NewGuid();
        var content = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(marker, 5000)));
        var blob = await Seal.ToBytesAsync([key.PublicKey], "message " + marker, (marker + ".txt", content));
        foreach (var needle in new[] { marker, "WHISTLE", "message", ".txt", "oniondrop-manifest", "ref-1" })
            Assert.That(blob.AsSpan().IndexOf(Encoding.UTF8.GetBytes(needle)), Is.EqualTo(-1), needle);
        Assert.That(blob.AsSpan(0, 7).ToArray(), Is.EqualTo("ODSEAL\x01"u8.ToArray()));
        // Ciphertext size: header + plaintext + 17 bytes per chunk; content dominates.
        Assert.That(blob.Length, Is.InRange(content.Length, content.Length + 4096));
    }

    [Test]
    public async Task TwoSealsOfTheSameSubmissionShareNoBytesBeyondThePreamble()
    {
        using var key = JournalistKey.Generate();
        var a = await Seal.ToBytesAsync([key.PublicKey], "same", ("same.txt", new byte[1000]));
        var b = await Seal.ToBytesAsync([key.PublicKey], "same", ("same.txt", new byte[1000]));
        Assert.That(a.Length, Is.EqualTo(b.Length));
        Assert.That(a.AsSpan(0, 18).SequenceEqual(b.AsSpan(0, 18)), Is.True, "preamble, count and key id are the same");
        Assert.That(a.AsSpan(18, 80).SequenceEqual(b.AsSpan(18, 80)), Is.False, "fresh ephemeral key and stream key");
        Assert.That(a.AsSpan(98).SequenceEqual(b.AsSpan(98)), Is.False);
    }
}
