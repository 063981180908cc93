using OnionDrop.Testing;

namespace OnionDrop.Sealing.Tests;

/// <summary>
/// The opener decrypts into slots of <see cref="SealedStreamReader.ChunksPerSlot"/> chunk(s), ahead on a thread of
/// its own for a blob of <see cref="SealedStreamReader.DecryptAheadFrom"/> or more, inline below. Either way a
/// failure must surface exactly where it happens in the stream, with the one-thread reasons, whether it falls
/// inside a slot, on a slot's edge, or after the reader has already written part of a file; and a verified blob
/// stays out of view until it is published. Each case runs with a blob of 3 slots (inline) and with one a few
/// slots over the threshold (a second thread). (Written when a slot held several chunks; with one, "a slot's
/// edge" is any two adjacent chunks, and the cases still hold.)
/// </summary>
public class PipelineTests
{
    private const int Header = 8 + 2 + 88 + 24, CipherChunk = 64 * 1024 + 17;
    private static readonly int Slot = SealedStreamReader.ChunksPerSlot;
    private JournalistKey _key = null!;
    private TempDirectory _dir = null!;

    [SetUp] public void SetUp() => (_key, _dir) = (JournalistKey.Generate(), new TempDirectory());
    [TearDown] public void TearDown() { _key.Dispose(); _dir.Dispose(); }

    private async Task<byte[]> SealAsync(int size)
    {
        var output = new MemoryStream();
        await using var sealer = new SubmissionSealer(output, [_key.PublicKey]);
        await sealer.BeginFileAsync("f", "application/octet-stream");
        await sealer.WriteAsync(Seal.Bytes(size, 11));
        await sealer.EndFileAsync();
        await sealer.CompleteAsync("ref", "", Seal.ReceivedAt);
        return output.ToArray();
    }

    /// <summary>Blocks of <see cref="Slot"/> full chunks in the case's blob: 3 inline, or a few more than the threshold.</summary>
    private static int Blocks(bool ahead) => ahead ? (int)(SealedStreamReader.DecryptAheadFrom / (Slot * CipherChunk)) + 4 : 3;

    private void AssertRefused(byte[] blob, string reason)
    {
        var e = Assert.Throws<SealedFormatException>(() => Seal.Open(blob, _key, _dir.Path));
        Assert.That(e!.Message, Is.EqualTo(reason));
        Assert.That(Directory.EnumerateFileSystemEntries(_dir.Path), Is.Empty, reason);
    }

    [Test]
    public async Task Both_sizes_are_on_their_side_of_the_threshold([Values] bool ahead)
    {
        var blob = await SealAsync(Blocks(ahead) * Slot * 64 * 1024);
        Assert.That(blob.Length >= SealedStreamReader.DecryptAheadFrom, Is.EqualTo(ahead));
    }

    [Test]
    public async Task A_chunk_damaged_several_slots_in_is_refused_by_its_number_after_part_of_the_file_was_written([Values] bool ahead)
    {
        var slots = Blocks(ahead);
        var blob = await SealAsync(slots * Slot * 64 * 1024 + 5000);
        var damaged = (slots - 1) * Slot + Math.Min(2, Slot); // in the last full block: those before were already hashed and written
        blob[Header + (damaged - 1) * CipherChunk + 100] ^= 1;
        AssertRefused(blob, $"chunk {damaged} fails authentication: corrupted, reordered or from another blob");
    }

    [Test]
    public async Task Chunks_swapped_across_a_slot_edge_are_refused([Values] bool ahead)
    {
        var slots = Blocks(ahead);
        var blob = await SealAsync(slots * Slot * 64 * 1024);
        int a = (slots - 1) * Slot, b = a + 1; // the last chunk of one block and the first of the next
        var first = blob.AsSpan(Header + (a - 1) * CipherChunk, CipherChunk).ToArray();
        blob.AsSpan(Header + (b - 1) * CipherChunk, CipherChunk).CopyTo(blob.AsSpan(Header + (a - 1) * CipherChunk));
        first.CopyTo(blob.AsSpan(Header + (b - 1) * CipherChunk));
        AssertRefused(blob, $"chunk {a} fails authentication: corrupted, reordered or from another blob");
    }

    [Test]
    public async Task A_cut_exactly_at_a_slot_edge_is_refused_as_truncated([Values] bool ahead)
    {
        var slots = Blocks(ahead);
        var blob = await SealAsync(slots * Slot * 64 * 1024);
        var kept = (slots - 1) * Slot;
        AssertRefused(blob[..(Header + kept * CipherChunk)], $"truncated: the stream ends after chunk {kept} without its final chunk");
    }

    [Test]
    public async Task Bytes_after_a_full_final_chunk_that_ends_a_slot_are_refused([Values] bool ahead)
    {
        var slots = Blocks(ahead);
        // Find the file size whose plaintext is exactly whole blocks of full chunks, so FINAL ends a block's
        // read exactly and only one more read can tell that something follows.
        var target = slots * Slot;
        var size = target * 64 * 1024 - 200;
        for (var i = 0; i < 5; i++)
            size -= (await SealAsync(size)).Length - Header - target * CipherChunk;
        var blob = await SealAsync(size);
        Assert.That(blob.Length, Is.EqualTo(Header + target * CipherChunk), "found the exact size");

        using (var ok = new TempDirectory())
            Assert.That(Seal.Open(blob, _key, ok.Path).Files.Single().Size, Is.EqualTo(size), "the exact blob opens");
        AssertRefused([.. blob, 0], $"trailing data after the final chunk ({target})");
    }

    [Test]
    public async Task A_verified_blob_stays_hidden_until_published_and_is_gone_if_never_published([Values] bool ahead)
    {
        var slots = Blocks(ahead);
        var size = slots * Slot * 64 * 1024;
        var blob = await SealAsync(size);
        using (var verified = SubmissionOpener.Verify(new MemoryStream(blob), _key, _dir.Path, "x.sealed"))
        {
            Assert.That(verified.Files.Single().Size, Is.EqualTo(size));
            Assert.That(Directory.GetDirectories(_dir.Path).Select(Path.GetFileName), Has.All.StartWith(".oniondrop-opening-"), "nothing in view yet");
        }
        Assert.That(Directory.EnumerateFileSystemEntries(_dir.Path), Is.Empty, "disposed unpublished: the plaintext is gone");

        using var again = SubmissionOpener.Verify(new MemoryStream(blob), _key, _dir.Path, "x.sealed");
        var opened = again.Publish();
        Assert.That(Path.GetFileName(opened.Directory), Is.EqualTo("ref"));
        Assert.That(File.ReadAllBytes(Path.Combine(opened.Directory, "f")), Is.EqualTo(Seal.Bytes(size, 11)));
        Assert.That(Directory.GetDirectories(_dir.Path).Select(Path.GetFileName), Is.EqualTo(new[] { "ref" }));
    }
}
