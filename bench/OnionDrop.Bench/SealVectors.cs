using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using OnionDrop.Sealing;

namespace OnionDrop.Bench;

/// <summary>
/// Writes the sealed-format test vectors (tests/vectors/, see its README.md): keys, good_*.sealed with the
/// content each must open to in good_*.expected/, and fail_*.sealed with the reason each must be refused
/// for in fail_*.expect. Keys are derived from fixed seeds; the blobs differ per run (fresh stream keys).
/// Run: tests/vectors/generate
/// </summary>
public sealed class SealVectors : IBenchmark
{
    public string Name => "seal-vectors";
    public string Description => "regenerate tests/vectors (sealed-format test vectors); arg: the vectors directory";

    private static readonly DateTimeOffset ReceivedAt = new(2026, 11, 23, 12, 34, 56, TimeSpan.Zero);
    private string _dir = "";

    public async Task<int> RunAsync(string[] args)
    {
        if (args.Length != 1) { Console.Error.WriteLine("usage: oniondrop-bench seal-vectors DIR"); return 2; }
        _dir = args[0];
        Directory.CreateDirectory(_dir);
        foreach (var old in Directory.EnumerateFileSystemEntries(_dir).Where(p => Path.GetFileName(p) is var n
                     && (n.StartsWith("good_") || n.StartsWith("fail_") || n.EndsWith(".key") || n.EndsWith(".passphrase"))))
            if (Directory.Exists(old)) Directory.Delete(old, recursive: true); else File.Delete(old);

        using var journalist = SeededKey("journalist");
        using var colleague = SeededKey("colleague");
        using var other = SeededKey("other");
        journalist.Save(Path.Combine(_dir, "journalist.key"));
        other.Save(Path.Combine(_dir, "other.key"));
        // The same secret as journalist.key, Argon2id-protected (cheap costs: it is a test vector, not a real key).
        const string passphrase = "correct horse battery staple";
        journalist.Save(Path.Combine(_dir, "journalist-protected.key"), passphrase, opsLimit: 3, memLimit: 8 * 1024 * 1024);
        await File.WriteAllTextAsync(Path.Combine(_dir, "journalist-protected.passphrase"), passphrase + "\n");

        RecipientPublicKey[] toJournalist = [journalist.PublicKey];

        // --- good: each must open to exactly good_NAME.expected/ (plus the opener's manifest.json) ---
        await Good("good_empty", toJournalist, "empty-0001", "", []);
        await Good("good_message_only", toJournalist, "message-0002",
            "Bonjour, 你好, مرحبا, Привет.\nThe files are on their way by post.\r\nLine three\0with a NUL.", []);
        await Good("good_two_files", toJournalist, "two-files-0003", "Two files: a note and 150 KiB of data.",
            [("note.txt", "text/plain", Encoding.UTF8.GetBytes("Meet me at the usual place.\n")), ("data.bin", "application/octet-stream", Seeded(150 * 1024, 3))]);
        await Good("good_three_recipients", [colleague.PublicKey, other.PublicKey, journalist.PublicKey], "three-0004",
            "Sealed to three keys; journalist.key is the last stanza.", [("report.pdf", "application/pdf", Seeded(70_000, 4))]);
        await Good("good_unsafe_names", toJournalist, "../../unsafe\nnames", "Every name here must be neutralised.",
            UnsafeNames().Select((n, i) => (n, "text/plain", Encoding.UTF8.GetBytes($"file {i}: {n}\n"))).ToArray());
        await GoodExactChunks("good_exact_two_chunks", toJournalist);

        // --- fail: each must be refused with a reason containing fail_NAME.expect ---
        var baseBlob = await Seal(toJournalist, "base", "", [("a.bin", "application/octet-stream", Seeded(200 * 1024, 5))]);
        var chunks = Chunks(baseBlob, headerLength: HeaderLength(1));   // 4 chunks: 3 full + final
        var header = baseBlob[..HeaderLength(1)];

        await Fail("fail_empty", [], "empty file");
        await Fail("fail_not_sealed", Encoding.UTF8.GetBytes("Just some text that someone renamed to .sealed\n"), "not an OnionDrop sealed blob");
        await Fail("fail_unknown_version", Flip(baseBlob, 6, 0x03), "unknown format version 2");
        await Fail("fail_truncated_header", baseBlob[..40], "truncated header");
        await Fail("fail_header_only", header, "no chunks after the header");
        await Fail("fail_truncated_at_chunk_boundary", [.. header, .. chunks[0], .. chunks[1]], "without its final chunk");
        await Fail("fail_truncated_mid_chunk", baseBlob[..(header.Length + 2 * Cipher + 1000)], "chunk 3 (the last) fails authentication: truncated mid-chunk");
        await Fail("fail_truncated_mid_final_chunk", baseBlob[..^5], "chunk 4 (the last) fails authentication");
        await Fail("fail_missing_final_tag", await Seal(toJournalist, "no-final", "", [("a.txt", "text/plain", "x"u8.ToArray())], finalTag: 0), "without its final chunk");
        await Fail("fail_bitflip_header", Flip(baseBlob, HeaderLength(1) - 5, 0x10), "header or first chunk fails authentication");
        await Fail("fail_bitflip_recipient_count", Flip(baseBlob, 8, 0x02), "header or first chunk fails authentication");
        await Fail("fail_bitflip_key_id", Flip(baseBlob, 10, 0x01), "not to this one");
        await Fail("fail_bitflip_stanza", Flip(baseBlob, 10 + 8 + 40, 0x01), "but the part only this key unlocks has been altered (the key is fine)");
        var twoRecipients = await Seal([other.PublicKey, journalist.PublicKey], "two", "", [("a.txt", "text/plain", "hello"u8.ToArray())]);
        await Fail("fail_bitflip_other_stanza", Flip(twoRecipients, 10 + 30, 0x80), "header or first chunk fails authentication");
        await Fail("fail_bitflip_first_chunk", Flip(baseBlob, header.Length + 100, 0x01), "header or first chunk fails authentication");
        await Fail("fail_bitflip_body", Flip(baseBlob, header.Length + Cipher + 100, 0x01), "chunk 2 fails authentication");
        await Fail("fail_bitflip_final_chunk", Flip(baseBlob, baseBlob.Length - 1, 0x01), "chunk 4 (the last) fails authentication");
        await Fail("fail_chunks_swapped", [.. header, .. chunks[0], .. chunks[2], .. chunks[1], .. chunks[3]], "chunk 2 fails authentication");
        await Fail("fail_chunk_dropped", [.. header, .. chunks[0], .. chunks[2], .. chunks[3]], "chunk 2 fails authentication");
        var sibling = await Seal(toJournalist, "sibling", "", [("a.bin", "application/octet-stream", Seeded(200 * 1024, 5))]);
        await Fail("fail_chunk_from_other_blob", [.. header, .. chunks[0], .. Chunks(sibling, HeaderLength(1))[1], .. chunks[2], .. chunks[3]], "chunk 2 fails authentication");
        await Fail("fail_header_from_other_blob", [.. sibling[..HeaderLength(1)], .. chunks[0], .. chunks[1], .. chunks[2], .. chunks[3]], "header or first chunk fails authentication");
        await Fail("fail_wrong_key", await Seal([other.PublicKey], "wrong-key", "", [("a.txt", "text/plain", "secret"u8.ToArray())]), "not to this one");
        // Chunks are fixed-size, so bytes after a short final chunk make it fail to authenticate; after a full
        // final chunk they are reported as trailing data.
        await Fail("fail_trailing_garbage_after_short_final", [.. baseBlob, .. "garbage"u8], "chunk 4 (the last) fails authentication");
        var exact = await File.ReadAllBytesAsync(Path.Combine(_dir, "good_exact_two_chunks.sealed"));
        await Fail("fail_trailing_garbage", [.. exact, .. "garbage"u8], "trailing data after the final chunk (2)");
        await Fail("fail_final_chunk_repeated", [.. exact, .. exact[^Cipher..]], "trailing data after the final chunk (2)");

        // Plaintext no correct sealer writes (its raw knobs): refused as soon as the 10,001st file starts.
        await Fail("fail_too_many_files", await SealRecords(toJournalist, TooManyFiles()), "more than 10000 files");
        // A manifest of no files that lists 10,001: refused at the 10,001st entry, before the rest are read.
        await Fail("fail_manifest_lists_too_many_files", await SealRecords(toJournalist, ManifestOnly(
            "{\"format\":\"oniondrop-manifest-1\",\"reference\":\"lists-too-many\",\"receivedAt\":\"2026-11-23T12:34Z\",\"message\":\"\",\"files\":["
            + string.Join(",", Enumerable.Repeat("{}", 10_001)) + "]}")), "manifest lists more than 10000 files");
        // Parsers differ on which of two members counts: refused, so that no two openers show different messages.
        await Fail("fail_manifest_member_twice", await SealRecords(toJournalist, ManifestOnly(
            """{"format":"oniondrop-manifest-1","reference":"twice","receivedAt":"2026-11-23T12:34Z","message":"first","message":"second","files":[]}""")),
            "manifest is not valid JSON");

        Console.WriteLine($"seal-vectors: wrote {Directory.EnumerateFiles(_dir, "*.sealed").Count()} vectors to {_dir}");
        return 0;
    }

    private const int Cipher = 64 * 1024 + 17;
    private static int HeaderLength(int recipients) => 8 + 2 + recipients * (8 + 80) + 24;

    private static List<byte[]> Chunks(byte[] blob, int headerLength) =>
        blob[headerLength..].Chunk(Cipher).Select(c => c.ToArray()).ToList();

    private static byte[] Flip(byte[] blob, int offset, byte mask)
    {
        var copy = (byte[])blob.Clone();
        copy[offset] ^= mask;
        return copy;
    }

    private static JournalistKey SeededKey(string name) =>
        JournalistKey.FromSecretBytes(SHA256.HashData(Encoding.UTF8.GetBytes("oniondrop test vector key: " + name)));

    /// <summary>Deterministic bytes (SHA-256 in counter mode): vectors stay reproducible in content.</summary>
    internal static byte[] Seeded(int length, int seed)
    {
        var data = new byte[length];
        Span<byte> block = stackalloc byte[8];
        for (var i = 0; i * 32 < length; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(block, seed);
            BinaryPrimitives.WriteInt32LittleEndian(block[4..], i);
            var h = SHA256.HashData(block);
            h.AsSpan(0, Math.Min(32, length - i * 32)).CopyTo(data.AsSpan(i * 32));
        }
        return data;
    }

    private static IEnumerable<string> UnsafeNames() =>
    [
        "../../../etc/passwd", "/absolute/path.txt", "C:\\Windows\\system32\\evil.dll", ".bashrc", "..", ".", "",
        "-rf", "~root", "CON", "con.txt", "LPT1.log", "nul", "tab\there", "new\nline.txt", "nul\0byte.txt", "bell\a.txt",
        "escape\u001b[31mred.txt", "invoice\u202Efdp.exe", "zero\u200Bwidth.txt", "trailing dots...", "  spaces  ",
        "message.txt", "manifest.json", "Report.PDF", "report.pdf", "report.pdf", "日本語の文書.pdf", "قانون.docx",
        "emoji 🔥.png", new string('x', 300) + ".txt", new string('é', 200), "what?*<>|\".txt",
    ];

    private async Task Good(string name, RecipientPublicKey[] recipients, string reference, string message, (string Name, string Type, byte[] Data)[] files)
    {
        await File.WriteAllBytesAsync(Path.Combine(_dir, name + ".sealed"), await Seal(recipients, reference, message, files));
        var expected = Directory.CreateDirectory(Path.Combine(_dir, name + ".expected")).FullName;
        await File.WriteAllTextAsync(Path.Combine(expected, SubmissionOpener.MessageFileName), message);
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { SubmissionOpener.MessageFileName, SubmissionOpener.ManifestFileName };
        for (var i = 0; i < files.Length; i++)
            await File.WriteAllBytesAsync(Path.Combine(expected, SafeFileName.Unique(SafeFileName.ForFile(files[i].Name, $"file-{i + 1}"), taken)), files[i].Data);
    }

    /// <summary>A blob whose plaintext is exactly two full chunks: the final chunk is full, and nothing follows it.</summary>
    private async Task GoodExactChunks(string name, RecipientPublicKey[] recipients)
    {
        var size = 100_000;
        for (var attempt = 0; attempt < 5; attempt++)
        {
            var blob = await Seal(recipients, "exact-0005", "", [("exact.bin", "application/octet-stream", Seeded(size, 6))]);
            var excess = blob.Length - HeaderLength(1) - 2 * Cipher;
            if (excess == 0)
            {
                await Good(name, recipients, "exact-0005", "", [("exact.bin", "application/octet-stream", Seeded(size, 6))]);
                return;
            }
            size -= excess;
        }
        throw new InvalidOperationException("could not size the exact-chunks vector");
    }

    private static async Task<byte[]> Seal(RecipientPublicKey[] recipients, string reference, string message, (string Name, string Type, byte[] Data)[] files, byte finalTag = 3)
    {
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, recipients) { FinalTag = finalTag })
        {
            foreach (var (fileName, type, data) in files)
            {
                await sealer.BeginFileAsync(fileName, type);
                // Uneven writes, as a network delivers them.
                for (var o = 0; o < data.Length; o += 7777) await sealer.WriteAsync(data.AsMemory(o, Math.Min(7777, data.Length - o)));
                await sealer.EndFileAsync();
            }
            await sealer.CompleteAsync(reference, message, ReceivedAt);
        }
        return output.ToArray();
    }

    /// <summary>10,001 empty files named f0, f1, ... and a manifest: one file more than any server seals.</summary>
    private static byte[] TooManyFiles()
    {
        var plain = new MemoryStream();
        var type = "text/plain"u8.ToArray();
        var emptySha = SHA256.HashData([]);
        Span<byte> u32 = stackalloc byte[4];
        for (var i = 0; i <= 10_000; i++)
        {
            var name = Encoding.UTF8.GetBytes($"f{i}");
            plain.WriteByte(0x01);
            BinaryPrimitives.WriteUInt32LittleEndian(u32, (uint)name.Length);
            plain.Write(u32);
            plain.Write(name);
            BinaryPrimitives.WriteUInt32LittleEndian(u32, (uint)type.Length);
            plain.Write(u32);
            plain.Write(type);
            plain.WriteByte(0x03);
            plain.Write(new byte[8]);   // size 0
            plain.Write(emptySha);
        }
        var manifest = Encoding.UTF8.GetBytes("""{"format":"oniondrop-manifest-1","reference":"too-many","receivedAt":"2026-11-23T12:34Z","message":"","files":[]}""");
        plain.WriteByte(0x04);
        BinaryPrimitives.WriteUInt32LittleEndian(u32, (uint)manifest.Length);
        plain.Write(u32);
        plain.Write(manifest);
        return plain.ToArray();
    }

    /// <summary>The plaintext of a submission without files: one manifest record holding <paramref name="json"/>.</summary>
    private static byte[] ManifestOnly(string json)
    {
        var manifest = Encoding.UTF8.GetBytes(json);
        var plain = new byte[1 + 4 + manifest.Length];
        plain[0] = 0x04;
        BinaryPrimitives.WriteUInt32LittleEndian(plain.AsSpan(1), (uint)manifest.Length);
        manifest.CopyTo(plain, 5);
        return plain;
    }

    private static async Task<byte[]> SealRecords(RecipientPublicKey[] recipients, byte[] plaintext)
    {
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, recipients))
        {
            await sealer.AppendRawAsync(plaintext);
            await sealer.CompleteRawAsync();
        }
        return output.ToArray();
    }

    private async Task Fail(string name, byte[] blob, string reason)
    {
        await File.WriteAllBytesAsync(Path.Combine(_dir, name + ".sealed"), blob);
        await File.WriteAllTextAsync(Path.Combine(_dir, name + ".expect"), reason + "\n");
    }
}
