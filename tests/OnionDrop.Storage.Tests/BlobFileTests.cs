using System.Security.Cryptography;
using OnionDrop.Files;
using OnionDrop.Storage;
using OnionDrop.Testing;

namespace OnionDrop.Storage.Tests;

/// <summary>
/// Blob files are written by OnionDrop.Files' DirectFileWriter (its own tests cover the block edges): every
/// byte with O_DIRECT where the filesystem allows it, the last block padded then cut back.
/// Whatever the size, the store's file must hold exactly the ciphertext, with the size and hash recorded.
/// (tmpfs takes O_DIRECT too on this kernel; a filesystem that refuses it falls back to the page cache.)
/// </summary>
public class BlobFileTests
{
    private static readonly int[] Sizes = [0, 1, 4097, 524_289, 3 * DirectFileWriter.BlockSize + 12_345, (9 << 20) + 1];

    [TestCaseSource(nameof(Sizes))]
    public async Task Blob_file_holds_exactly_the_ciphertext_on_a_disk_filesystem(int size)
    {
        using var temp = new TempDirectory();
        await AssertExactAsync(temp.Combine("data"), size);
    }

    [TestCaseSource(nameof(Sizes))]
    public async Task Blob_file_holds_exactly_the_ciphertext_on_tmpfs(int size)
    {
        if (!Directory.Exists("/dev/shm")) Assert.Ignore("no /dev/shm here");
        var dir = Path.Combine("/dev/shm", "oniondrop-blobfile-" + Guid.NewGuid().ToString("N")[..8]);
        try { await AssertExactAsync(dir, size); }
        finally { Directory.Delete(dir, recursive: true); }
    }

    [Test]
    public async Task Blob_files_bypass_the_page_cache_on_ext4()
    {
        using var temp = new TempDirectory();
        var disk = temp.Combine("data");
        Directory.CreateDirectory(disk);
        if (new DriveInfo(disk).DriveFormat != "ext4") Assert.Ignore($"the temporary directory is on {new DriveInfo(disk).DriveFormat}, not ext4");
        Assert.That(await PartialFileIsDirectAsync(disk), Is.True, "ext4 supports O_DIRECT: every blob must be written with it");
    }

    private static async Task AssertExactAsync(string dataDir, int size)
    {
        using var store = SealedBlobStore.Open(dataDir);
        var (record, bytes) = await SealedBlobStoreTests.StoreAsync(store, size, seed: size);
        var path = Path.Combine(dataDir, "blobs", record.Id + ".sealed");
        var onDisk = await File.ReadAllBytesAsync(path);
        Assert.That(onDisk.Length, Is.EqualTo(size), "file length");
        Assert.That(onDisk, Is.EqualTo(bytes), "file content");
        Assert.That(record.Size, Is.EqualTo(size));
        Assert.That(record.Sha256Hex, Is.EqualTo(Convert.ToHexStringLower(SHA256.HashData(bytes))));
    }

    /// <summary>Reads the open flags of the .partial file of a submission being written, from /proc.</summary>
    private static async Task<bool> PartialFileIsDirectAsync(string dataDir)
    {
        using var store = SealedBlobStore.Open(dataDir);
        await using var writer = store.BeginSubmission();
        await writer.Ciphertext.WriteAsync(new byte[64 * 1024]);   // one sealer chunk
        var partial = Path.Combine(dataDir, "blobs", writer.Id + ".partial");
        foreach (var fd in Directory.GetFiles("/proc/self/fd"))
        {
            string target;
            try { target = new FileInfo(fd).LinkTarget ?? ""; } catch (IOException) { continue; }
            if (target != partial) continue;
            return OpenFileFlags.IsDirect(nint.Parse(Path.GetFileName(fd)));
        }
        Assert.Fail("the .partial file is not open in this process");
        return false;
    }
}
