using System.Security.Cryptography;
using OnionDrop.Testing;

namespace OnionDrop.Sealing.Tests;

public class RoundTripTests
{
    private static JournalistKey[] _keys = null!;
    private static RecipientPublicKey[] Three => [.. _keys[..3].Select(k => k.PublicKey)];

    [OneTimeSetUp]
    public void Keys() => _keys = [.. Enumerable.Range(0, 4).Select(_ => JournalistKey.Generate())];

    [OneTimeTearDown]
    public void DisposeKeys() { foreach (var k in _keys) k.Dispose(); }

    [TestCase(0)]
    [TestCase(1)]
    [TestCase(64 * 1024 - 1)]
    [TestCase(64 * 1024)]
    [TestCase(64 * 1024 + 1)]
    [TestCase(3 * 64 * 1024 + 12345)]
    public async Task EachOfThreeRecipientsOpensAndAFourthCannot(int size)
    {
        var data = Seal.Bytes(size, size);
        var blob = await Seal.ToBytesAsync(Three, "a message", ("file.bin", data));
        for (var i = 0; i < 3; i++)
        {
            using var dir = new TempDirectory();
            var opened = Seal.Open(blob, _keys[i], dir.Path);
            Assert.That(opened.Files, Has.Count.EqualTo(1));
            Assert.That(File.ReadAllBytes(Path.Combine(opened.Directory, "file.bin")), Is.EqualTo(data), $"recipient {i}");
            Assert.That(opened.Files[0].Size, Is.EqualTo(size));
            Assert.That(opened.Files[0].Sha256Hex, Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(data))));
            Assert.That(File.ReadAllText(Path.Combine(opened.Directory, "message.txt")), Is.EqualTo("a message"));
            Assert.That(opened.Message, Is.EqualTo("a message"));
            Assert.That(opened.Reference, Is.EqualTo("ref-1"));
            Assert.That(opened.ReceivedAt, Is.EqualTo(new DateTimeOffset(2026, 5, 4, 3, 2, 0, TimeSpan.Zero)), "time is kept to the minute only");
        }
        using var empty = new TempDirectory();
        var refused = Assert.Throws<SealedFormatException>(() => Seal.Open(blob, _keys[3], empty.Path));
        Assert.That(refused!.Message, Does.StartWith("sealed to 3 other keys, not to this one"));
        Assert.That(Directory.EnumerateFileSystemEntries(empty.Path), Is.Empty);
    }

    [Test]
    public async Task PlaintextEndingJustBeforeAtAndAfterAChunkBoundaryOpens()
    {
        // Find the file size whose whole plaintext (records + manifest) is exactly two chunks, so the held-back
        // full chunk must go out as FINAL; then the sizes around it, where the final chunk holds 1 or 2 bytes
        // or the previous chunk is one short.
        var one = new[] { _keys[0].PublicKey };
        const int header = 8 + 2 + 88 + 24, cipherChunk = 64 * 1024 + 17;
        var size = 100_000;
        for (var i = 0; i < 5; i++)
            size -= (await SealOneWrite(one, size)).Length - header - 2 * cipherChunk;
        Assert.That((await SealOneWrite(one, size)).Length, Is.EqualTo(header + 2 * cipherChunk), "found the exact two-chunk size");

        foreach (var s in new[] { size - 2, size - 1, size, size + 1, size + 2 })
        {
            var blob = await SealOneWrite(one, s);
            using var dir = new TempDirectory();
            var opened = Seal.Open(blob, _keys[0], dir.Path);
            Assert.That(File.ReadAllBytes(Path.Combine(opened.Directory, "f")), Is.EqualTo(Seal.Bytes(s, 7)), $"size {s}");
        }
    }

    private static async Task<byte[]> SealOneWrite(RecipientPublicKey[] recipients, int size)
    {
        var output = new MemoryStream();
        await using var sealer = new SubmissionSealer(output, recipients);
        await sealer.BeginFileAsync("f", "application/octet-stream");
        await sealer.WriteAsync(Seal.Bytes(size, 7));
        await sealer.EndFileAsync();
        await sealer.CompleteAsync("ref", "", Seal.ReceivedAt);
        return output.ToArray();
    }

    [Test]
    public async Task SeveralFilesKeepTheirNamesTypesAndOrder()
    {
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, [_keys[0].PublicKey]))
        {
            await sealer.BeginFileAsync("b.txt", "text/plain");
            await sealer.WriteAsync("bee"u8.ToArray());
            await sealer.EndFileAsync();
            await sealer.BeginFileAsync("a.csv", "text/csv");
            await sealer.EndFileAsync();
            await sealer.BeginFileAsync("b.txt", "text/plain");
            await sealer.WriteAsync("second"u8.ToArray());
            await sealer.EndFileAsync();
            await sealer.CompleteAsync("ref/../x", "", Seal.ReceivedAt);
        }
        using var dir = new TempDirectory();
        var opened = Seal.Open(output.ToArray(), _keys[0], dir.Path);
        Assert.That(opened.Files.Select(f => (f.OriginalName, f.SafeName, f.ContentType, f.Size)), Is.EqualTo(new[]
        {
            ("b.txt", "b.txt", "text/plain", 3L), ("a.csv", "a.csv", "text/csv", 0L), ("b.txt", "b (2).txt", "text/plain", 6L),
        }));
        Assert.That(Path.GetFileName(opened.Directory), Is.EqualTo("ref_.._x"));
        Assert.That(Path.GetDirectoryName(opened.Directory), Is.EqualTo(dir.Path));
        Assert.That(File.ReadAllText(Path.Combine(opened.Directory, "b (2).txt")), Is.EqualTo("second"));
        Assert.That(File.GetUnixFileMode(opened.Directory), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute));
        Assert.That(File.GetUnixFileMode(Path.Combine(opened.Directory, "a.csv")), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
    }

    /// <summary>
    /// The file hash is taken from the plaintext chunks on a lane of their own, and a chunk may hold the end of
    /// one file, record headers and the start of the next: files of every size (empty, a few bytes, several
    /// chunks, more chunks than the ring holds), written in uneven pieces, must each open with their own bytes.
    /// </summary>
    [Test]
    public async Task ManyFilesWrittenInUnevenPiecesEachOpenToTheirOwnBytes()
    {
        var sizes = new[] { 0, 1, 70_000, 3, 65_536 - 5, 0, 600_000, 12, 131_072, 9 };
        var pieces = new[] { 1, 65_536, 7, 100_000, 4_096, 65_531 };
        var files = sizes.Select((size, i) => Seal.Bytes(size, 100 + i)).ToArray();
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, [_keys[0].PublicKey]))
        {
            var p = 0;
            for (var i = 0; i < files.Length; i++)
            {
                await sealer.BeginFileAsync($"f{i}", "application/octet-stream");
                for (var at = 0; at < files[i].Length; p++)
                {
                    var n = Math.Min(pieces[p % pieces.Length], files[i].Length - at);
                    await sealer.WriteAsync(files[i].AsMemory(at, n));
                    at += n;
                }
                await sealer.EndFileAsync();
            }
            await sealer.CompleteAsync("ref", "a message", Seal.ReceivedAt);
        }
        using var dir = new TempDirectory();
        var opened = Seal.Open(output.ToArray(), _keys[0], dir.Path);
        Assert.That(opened.Files.Select(f => f.Size), Is.EqualTo(sizes.Select(s => (long)s)));
        for (var i = 0; i < files.Length; i++)
        {
            Assert.That(File.ReadAllBytes(Path.Combine(opened.Directory, $"f{i}")), Is.EqualTo(files[i]), $"f{i}");
            Assert.That(opened.Files[i].Sha256Hex, Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(files[i]))), $"f{i}'s hash");
        }
    }

    [Test]
    public async Task OpeningTheSameBlobTwiceNeverOverwrites()
    {
        var blob = await Seal.ToBytesAsync([_keys[0].PublicKey], "m", ("x", [1, 2, 3]));
        using var dir = new TempDirectory();
        var first = Seal.Open(blob, _keys[0], dir.Path);
        File.WriteAllText(Path.Combine(first.Directory, "x"), "journalist's notes");
        var second = Seal.Open(blob, _keys[0], dir.Path);
        // The same submission, recognised by its manifest.json though the journalist wrote in it: nothing written.
        Assert.That(second.AlreadyOpened, Is.True);
        Assert.That(second.Directory, Is.EqualTo(first.Directory));
        Assert.That(File.ReadAllText(Path.Combine(first.Directory, "x")), Is.EqualTo("journalist's notes"));

        // Another blob under the same reference goes beside it, never over it.
        var other = Seal.Open(await Seal.ToBytesAsync([_keys[0].PublicKey], "m", ("x", [4, 5, 6])), _keys[0], dir.Path);
        Assert.That(other.AlreadyOpened, Is.False);
        Assert.That(Path.GetFileName(other.Directory), Is.EqualTo("ref-1 (2)"));
        Assert.That(File.ReadAllText(Path.Combine(first.Directory, "x")), Is.EqualTo("journalist's notes"));
        Assert.That(File.ReadAllBytes(Path.Combine(other.Directory, "x")), Is.EqualTo(new byte[] { 4, 5, 6 }));
    }

    [Test]
    public async Task AWorkingFolderLeftByAKilledOpenerIsSweptButALiveOnesIsNot()
    {
        using var exited = System.Diagnostics.Process.Start("true")!;
        exited.WaitForExit();
        using var dir = new TempDirectory();
        var abandoned = Directory.CreateDirectory(dir.Combine($".oniondrop-opening-{exited.Id}-00")).FullName;
        File.WriteAllText(Path.Combine(abandoned, "partial"), "unverified plaintext");
        var live = Directory.CreateDirectory(dir.Combine($".oniondrop-opening-{Environment.ProcessId}-00")).FullName;

        Seal.Open(await Seal.ToBytesAsync([_keys[0].PublicKey], "m", ("x", [1])), _keys[0], dir.Path);

        Assert.That(Directory.Exists(abandoned), Is.False, "a dead opener's plaintext stays behind");
        Assert.That(Directory.Exists(live), Is.True, "a running opener's folder was deleted under it");
    }

    // Where a pid means something: this boot (boot_id, without its dashes) and this pid namespace ("pid:[4026531836]").
    private static string ThisBoot => File.ReadAllText("/proc/sys/kernel/random/boot_id").Trim().Replace("-", "");
    private static string ThisPidNamespace => new FileInfo("/proc/self/ns/pid").LinkTarget![5..^1];

    [Test]
    public async Task AWorkingFolderIsNamedForThisBootAndPidNamespace()
    {
        using var dir = new TempDirectory();
        using var verified = SubmissionOpener.Verify(new MemoryStream(await Seal.ToBytesAsync([_keys[0].PublicKey], "m", ("x", [1]))), _keys[0], dir.Path, "x.sealed");
        Assert.That(Path.GetFileName(Directory.GetDirectories(dir.Path).Single()),
            Does.Match($"^\\.oniondrop-opening-{ThisBoot}-{ThisPidNamespace}-{Environment.ProcessId}-[0-9a-f]{{16}}$"));
    }

    [Test]
    public async Task AnotherMachinesOrContainersWorkingFolderIsSweptOnlyOnceUntouchedForADay()
    {
        // A working folder on a shared or removable drive, or in a directory a container shares: its pid is not
        // one this machine (or pid namespace) can look up, so only its age tells whether its opener is gone.
        using var exited = System.Diagnostics.Process.Start("true")!;
        exited.WaitForExit();
        int dead = exited.Id, alive = Environment.ProcessId;
        string here = $"{ThisBoot}-{ThisPidNamespace}", otherBoot = $"0123456789abcdef0123456789abcdef-{ThisPidNamespace}";
        var day = TimeSpan.FromDays(1);   // how long another machine's folder must be untouched (docs/sealed-format.md)
        using var dir = new TempDirectory();
        string Folder(string name, TimeSpan folderAge, TimeSpan fileAge)
        {
            var path = Directory.CreateDirectory(dir.Combine(".oniondrop-opening-" + name)).FullName;
            File.WriteAllText(Path.Combine(path, "partial"), "unverified plaintext");
            File.SetLastWriteTimeUtc(Path.Combine(path, "partial"), DateTime.UtcNow - fileAge);
            Directory.SetLastWriteTimeUtc(path, DateTime.UtcNow - folderAge);
            return path;
        }
        var idle = day + TimeSpan.FromHours(1);
        var recent = TimeSpan.FromHours(1);
        var cases = new (string Folder, bool Swept, string What)[]
        {
            (Folder($"{here}-{dead}-00", recent, recent), true, "this boot's, its opener gone"),
            (Folder($"{here}-{alive}-01", idle, idle), false, "this boot's, its opener running, however long untouched"),
            (Folder($"{otherBoot}-{dead}-02", recent, recent), false, "another machine's (or boot's), touched an hour ago: its pid means nothing here"),
            (Folder($"{otherBoot}-{alive}-03", idle, idle), true, "another machine's, untouched for a day"),
            (Folder($"{otherBoot}-{dead}-04", idle, recent), false, "another machine's, a file in it written an hour ago (a long file moves its own time only)"),
            (Folder($"{ThisBoot}-1-{dead}-05", recent, recent), false, "another pid namespace's (a container) on this boot: its pids are not ours"),
            (Folder($"{ThisBoot}-1-{dead}-06", idle, idle), true, "another pid namespace's, untouched for a day"),
            (Folder($"{dead}-07", recent, recent), true, "the old form (pid only), its opener gone"),
            (Folder($"{alive}-08", idle, idle), false, "the old form, its opener running"),
            (Folder($"x{otherBoot}-{dead}-09", idle, idle), false, "a form not ours: left alone"),
        };

        Seal.Open(await Seal.ToBytesAsync([_keys[0].PublicKey], "m", ("x", [1])), _keys[0], dir.Path);

        Assert.Multiple(() =>
        {
            foreach (var (folder, swept, what) in cases)
                Assert.That(Directory.Exists(folder), Is.EqualTo(!swept), (swept ? "kept: " : "deleted: ") + what);
        });
    }

    [Test]
    public async Task AnUnfinishedSealIsRefusedAndLeavesNothing()
    {
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, [_keys[0].PublicKey]))
        {
            await sealer.BeginFileAsync("x", "text/plain");
            await sealer.WriteAsync(Seal.Bytes(200_000, 1));
            // disposed without CompleteAsync: the upload was cut
        }
        using var dir = new TempDirectory();
        var e = Assert.Throws<SealedFormatException>(() => Seal.Open(output.ToArray(), _keys[0], dir.Path));
        Assert.That(e!.Message, Does.Contain("without its final chunk"));
        Assert.That(Directory.EnumerateFileSystemEntries(dir.Path), Is.Empty);
    }

    [Test]
    public async Task CallsOutOfOrderAreRefused()
    {
        await using var sealer = new SubmissionSealer(new MemoryStream(), [_keys[0].PublicKey]);
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await sealer.WriteAsync(new byte[1]));
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await sealer.EndFileAsync());
        await sealer.BeginFileAsync("a", "b");
        await Assert.ThrowsAsync<InvalidOperationException>(async () => await sealer.CompleteAsync("r", "", DateTimeOffset.UtcNow));
        Assert.Throws<ArgumentException>(() => _ = new SubmissionSealer(new MemoryStream(), []));
    }

    [Test]
    public async Task NamesAndMessagesAreSealedAsSent()
    {
        // Noncharacters are valid UTF-8 that any source can send (a name with U+FFFE once made opening throw).
        string[] names = ["../../etc/passwd", "a\0b", "\u202Eexe.pdf", new string('n', 5000), "日本語", "memo\uFFFE\uFDD0\U0010FFFF.txt", "\ud800lone"];
        var output = new MemoryStream();
        await using (var sealer = new SubmissionSealer(output, [_keys[0].PublicKey]))
        {
            foreach (var n in names) { await sealer.BeginFileAsync(n, "x/y"); await sealer.EndFileAsync(); }
            await sealer.CompleteAsync("r", "message\0with\nanything \U0001F525", Seal.ReceivedAt);
        }
        using var dir = new TempDirectory();
        var opened = Seal.Open(output.ToArray(), _keys[0], dir.Path);
        Assert.That(opened.Files.Select(f => f.OriginalName), Is.EqualTo(names[..^1].Append("\uFFFDlone")), "lone surrogates (no form can send them) become U+FFFD");
        Assert.That(opened.Message, Is.EqualTo("message\0with\nanything \U0001F525"));
        var written = Directory.EnumerateFiles(opened.Directory).Select(p => Path.GetFileName(p)!).ToList();
        Assert.That(written, Has.Count.EqualTo(names.Length + 2));
        Assert.That(written, Has.None.Matches<string>(n => n!.Contains('\0') || n.Contains('\u202E') || n.StartsWith('.') || n.Length > SafeFileName.MaxBytes));
    }

    /// <summary>1 GiB from a seeded stream, three recipients: each opens to the same SHA-256; a fourth key cannot.</summary>
    [Test, Category("Slow")]
    public async Task OneGibibyteRoundTripsToThreeRecipients()
    {
        const long size = 1L << 30;
        using var dir = new TempDirectory();
        var blobPath = dir.Combine("big.sealed");
        string expectedSha;
        await using (var blob = new FileStream(blobPath, FileMode.CreateNew, FileAccess.Write))
        await using (var sealer = new SubmissionSealer(blob, Three))
        using (var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256))
        {
            await sealer.BeginFileAsync("big.bin", "application/octet-stream");
            var source = new SeededStream(size, 42);
            var buffer = new byte[1 << 20];
            int n;
            while ((n = source.Read(buffer)) > 0)
            {
                sha.AppendData(buffer, 0, n);
                await sealer.WriteAsync(buffer.AsMemory(0, n));
            }
            await sealer.EndFileAsync();
            await sealer.CompleteAsync("big", "one gibibyte", Seal.ReceivedAt);
            expectedSha = Convert.ToHexStringLower(sha.GetHashAndReset());
        }
        for (var i = 0; i < 3; i++)
        {
            var output = dir.Combine("out" + i);
            await using (var blob = File.OpenRead(blobPath))
            {
                var opened = SubmissionOpener.Open(blob, _keys[i], output, "big.sealed");
                Assert.That(opened.Files.Single().Size, Is.EqualTo(size));
                Assert.That(opened.Files.Single().Sha256Hex, Is.EqualTo(expectedSha));
                Assert.That(Seal.Sha256Hex(Path.Combine(opened.Directory, "big.bin")), Is.EqualTo(expectedSha), $"recipient {i}");
            }
            Directory.Delete(output, recursive: true);   // plaintext stays on disk no longer than needed
        }
        await using (var blob = File.OpenRead(blobPath))
            Assert.That(() => SubmissionOpener.Open(blob, _keys[3], dir.Combine("out3"), "big.sealed"),
                Throws.TypeOf<SealedFormatException>().With.Message.StartsWith("sealed to 3 other keys, not to this one"));
        Assert.That(Directory.Exists(dir.Combine("out3")) ? Directory.EnumerateFileSystemEntries(dir.Combine("out3")) : [], Is.Empty);
    }
}
