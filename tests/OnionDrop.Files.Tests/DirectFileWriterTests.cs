using System.Security.Cryptography;
using OnionDrop.Files;
using OnionDrop.Testing;

namespace OnionDrop.Files.Tests;

/// <summary>
/// A file's first <c>directFrom</c> bytes go through the page cache, the rest in aligned blocks with O_DIRECT,
/// the last one padded and then cut back: whatever the switch, the size and however the writes are cut, the
/// file must hold exactly what was written. Both switches in use are covered: the opener's (8 MiB) and the
/// store's (0: every byte direct).
/// </summary>
public class DirectFileWriterTests
{
    private const long From = 8L << 20;
    private const int Block = DirectFileWriter.BlockSize;

    private static readonly TestCaseData[] Cases =
    [
        .. new long[] { 0, 1, 4097, 65_553, From - 1, From, From + 1, From + 4096, From + Block - 1, From + Block, From + 3 * Block + 12_345 }
            .Select(size => new TestCaseData(From, size)),
        .. new long[] { 0, 1, 4095, 4096, 4097, Block - 1, Block, Block + 1, 3 * Block + 12_345 }
            .Select(size => new TestCaseData(0L, size)),
    ];

    [TestCaseSource(nameof(Cases))]
    public void File_holds_exactly_what_was_written_on_a_disk_filesystem(long directFrom, long size)
    {
        using var temp = new TempDirectory();
        AssertExact(temp.Combine("out"), directFrom, size);
    }

    [TestCaseSource(nameof(Cases))]
    public async Task File_holds_exactly_what_was_written_with_WriteAsync_and_FlushAsync(long directFrom, long size)
    {
        using var temp = new TempDirectory();
        var path = temp.Combine("out");
        var expected = Seeded(size);
        using (var file = Create(path))
        using (var writer = new DirectFileWriter(file, directFrom))
        {
            foreach (var (at, n) in Pieces(size)) await writer.WriteAsync(expected.AsMemory((int)at, n));
            await writer.FlushAsync();
            Assert.That(writer.Length, Is.EqualTo(size), "Length");
        }
        Assert.That(await File.ReadAllBytesAsync(path), Is.EqualTo(expected));
    }

    [TestCaseSource(nameof(Cases))]
    public void File_holds_exactly_what_was_written_on_tmpfs(long directFrom, long size)
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm here");
        var path = Path.Combine("/dev/shm", "oniondrop-direct-" + Guid.NewGuid().ToString("N")[..8]);
        try { AssertExact(path, directFrom, size); }
        finally { File.Delete(path); }
    }

    [Test]
    public void A_small_file_stays_in_the_page_cache_and_a_large_one_leaves_it_on_ext4()
    {
        using var temp = new TempDirectory();
        using var file = CreateOnExt4(temp, out var path);
        using var writer = new DirectFileWriter(file, From);
        writer.Write(new byte[From - 1]);
        Assert.That(IsDirect(file), Is.False, "below the switch the file is written through the page cache");
        writer.Write(new byte[Block + 1]);
        Assert.That(IsDirect(file), Is.True, "ext4 supports O_DIRECT: past the switch the file must be written with it");
        writer.Flush();
        Assert.That(new FileInfo(path).Length, Is.EqualTo(From + Block));
    }

    [Test]
    public void With_the_switch_at_zero_the_first_byte_goes_direct_on_ext4()
    {
        using var temp = new TempDirectory();
        using var file = CreateOnExt4(temp, out var path);
        using var writer = new DirectFileWriter(file, directFrom: 0);
        writer.Write(new byte[1]);
        Assert.That(IsDirect(file), Is.True);
        writer.Flush();
        Assert.That(new FileInfo(path).Length, Is.EqualTo(1));
    }

    [Test]
    public void A_switch_off_the_alignment_is_refused()
    {
        using var temp = new TempDirectory();
        using var file = Create(temp.Combine("out"));
        Assert.That(() => new DirectFileWriter(file, 4097), Throws.ArgumentException);
        Assert.That(() => new DirectFileWriter(file, -4096), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public async Task A_full_disk_past_the_switch_surfaces_as_ENOSPC_and_disposing_after_it_does_not_throw()
    {
        // A file system of its own with room for the cached part and a little more: the direct blocks fail.
        using var temp = new TempDirectory();
        using var fs = await LoopFileSystem.MountAsync(temp.Path, 32L * 1024 * 1024);
        fs.Fill(leaveFree: From + 2 * Block);
        using var file = Create(Path.Combine(fs.MountPoint, "out"));
        var writer = new DirectFileWriter(file, From);
        var ex = Assert.Catch<IOException>(() =>
        {
            for (var i = 0; i < 64; i++) writer.Write(new byte[Block]);
            writer.Flush();
        });
        Assert.That((ex!.HResult & 0xFFFF) is 28 || ex.Message.Contains("No space left"), Is.True, ex.Message);
        Assert.That(writer.Dispose, Throws.Nothing);
    }

    [Test]
    public async Task A_full_disk_surfaces_as_ENOSPC_through_WriteAsync_with_the_store_s_settings()
    {
        // The store's way: every byte direct, hashed on the writer's lane, written and flushed asynchronously.
        using var temp = new TempDirectory();
        using var fs = await LoopFileSystem.MountAsync(temp.Path, 32L * 1024 * 1024);
        fs.Fill(leaveFree: 2 * Block);
        using var file = Create(Path.Combine(fs.MountPoint, "out"));
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var writer = new DirectFileWriter(file, directFrom: 0, hash);
        var ex = await Assert.CatchAsync<IOException>(async () =>
        {
            for (var i = 0; i < 64; i++) await writer.WriteAsync(new byte[Block]);
            await writer.FlushAsync();
        });
        Assert.That((ex!.HResult & 0xFFFF) is 28 || ex.Message.Contains("No space left"), Is.True, ex.Message);
        Assert.That(writer.Dispose, Throws.Nothing);
    }

    [Test]
    public void Fsync_of_a_missing_path_names_it()
    {
        using var temp = new TempDirectory();
        var missing = temp.Combine("missing");
        Assert.That(() => FileSync.Fsync(missing), Throws.InstanceOf<IOException>().With.Message.Contains(missing));
        Assert.That(() => FileSync.Fsync(temp.Path), Throws.Nothing, "a directory is fsynced too");
    }

    [TestCaseSource(nameof(Cases))]
    public async Task With_a_hash_the_file_holds_what_was_written_and_the_hash_takes_exactly_that_not_the_padding(long directFrom, long size)
    {
        using var temp = new TempDirectory();
        var expected = Seeded(size);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var file = Create(temp.Combine("out")))
        using (var writer = new DirectFileWriter(file, directFrom, hash))
        {
            foreach (var (at, n) in Pieces(size)) await writer.WriteAsync(expected.AsMemory((int)at, n));
            await writer.FlushAsync();
        }
        Assert.That(await File.ReadAllBytesAsync(temp.Combine("out")), Is.EqualTo(expected), "file content");
        Assert.That(Convert.ToHexStringLower(hash.GetHashAndReset()), Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(expected))));
    }

    [TestCase(0L)]
    [TestCase(From)]
    public async Task A_flush_mid_file_then_more_writes_leaves_the_whole_file_and_its_hash(long directFrom)
    {
        using var temp = new TempDirectory();
        var path = temp.Combine("out");
        var expected = Seeded(directFrom + 5 * Block + 777);
        var cuts = new[] { directFrom + Block + 100, directFrom + 3 * Block + 5, expected.Length };
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        using (var file = Create(path))
        using (var writer = new DirectFileWriter(file, directFrom, hash))
        {
            long at = 0;
            foreach (var cut in cuts)
            {
                await writer.WriteAsync(expected.AsMemory((int)at, (int)(cut - at)));
                await writer.FlushAsync();
                Assert.That(new FileInfo(path).Length, Is.EqualTo(cut), "after a flush the file holds everything so far");
                at = cut;
            }
        }
        Assert.That(await File.ReadAllBytesAsync(path), Is.EqualTo(expected), "file content");
        Assert.That(hash.GetHashAndReset(), Is.EqualTo(SHA256.HashData(expected)), "hash");
    }

    /// <summary>Writes <paramref name="size"/> seeded bytes in uneven pieces (a sealer chunk, then one byte, ...).</summary>
    private static void AssertExact(string path, long directFrom, long size)
    {
        var expected = Seeded(size);
        using (var file = Create(path))
        using (var writer = new DirectFileWriter(file, directFrom))
        {
            foreach (var (at, n) in Pieces(size)) writer.Write(expected.AsSpan((int)at, n));
            writer.Flush();
            Assert.That(writer.Length, Is.EqualTo(size), "Length");
        }
        var written = File.ReadAllBytes(path);
        Assert.That(written.Length, Is.EqualTo(size), "file length");
        Assert.That(written.SequenceEqual(expected), Is.True, "file content");
    }

    private static byte[] Seeded(long size)
    {
        var bytes = new byte[size];
        new Random((int)size).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Uneven pieces: a sealer chunk and a little, one byte, more than half a block, a whole block, ...</summary>
    private static IEnumerable<(long At, int Length)> Pieces(long size)
    {
        var pieces = new[] { 65_553, 1, 300_000, Block };
        for (long at = 0, i = 0; at < size; i++)
        {
            var n = (int)Math.Min(pieces[i % pieces.Length], size - at);
            yield return (at, n);
            at += n;
        }
    }

    /// <summary>A new file in a temporary directory on ext4, which takes O_DIRECT; elsewhere the test is ignored.</summary>
    private static FileStream CreateOnExt4(TempDirectory temp, out string path)
    {
        var format = new DriveInfo(temp.Path).DriveFormat;
        if (format != "ext4") Assert.Ignore($"the temporary directory is on {format}, not ext4");
        path = temp.Combine("out");
        return Create(path);
    }

    private static FileStream Create(string path) =>
        new(path, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, BufferSize = 0 });

    private static bool IsDirect(FileStream file) => OpenFileFlags.IsDirect(file.SafeFileHandle.DangerousGetHandle());
}
