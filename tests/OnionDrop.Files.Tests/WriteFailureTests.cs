using OnionDrop.Files;
using OnionDrop.Testing;

namespace OnionDrop.Files.Tests;

/// <summary>
/// One test of "the disk is full" for every caller (the upload page's 507, open's and fetch's one-line messages): a real
/// ENOSPC however deeply wrapped, and the refusals made before the disk says so; nothing else.
/// </summary>
public class WriteFailureTests
{
    [Test]
    public async Task A_full_disk_is_recognised_through_wrappers_and_nothing_else_is()
    {
        await using var disk = await SmallTmpfs.MountAsync(1);
        var full = Assert.Throws<IOException>(() => File.WriteAllBytes(Path.Combine(disk.Path, "big"), new byte[2 << 20]))!;

        Assert.That(WriteFailure.IsDiskFull(full), Is.True, full.ToString());
        Assert.That(WriteFailure.IsDiskFull(new InvalidOperationException("the catalog failed", new IOException("wrapped", full))), Is.True);
        Assert.That(WriteFailure.IsDiskFull(WriteFailure.DiskFull("the catalog keeps 4 MiB for itself")), Is.True);
        Assert.That(WriteFailure.IsDiskFull(new IOException("quota", WriteFailure.EDQUOT)), Is.True);

        Assert.That(WriteFailure.IsDiskFull(new IOException("Input/output error", 5)), Is.False);
        Assert.That(WriteFailure.IsDiskFull(new IOException("a message that says No space left on device")), Is.False, "errno decides, not words");
        Assert.That(WriteFailure.IsDiskFull(new InvalidOperationException("no I/O at all")), Is.False);
        Assert.That(WriteFailure.IsDiskFull(null), Is.False);
    }

    [TestCase(0, "0 B")]
    [TestCase(1023, "1023 B")]
    [TestCase(1024, "1.0 KiB")]
    [TestCase(3L << 20, "3.0 MiB")]
    [TestCase((3L << 30) / 2, "1.5 GiB")]
    [TestCase(2L << 40, "2.0 TiB")]
    [SetCulture("fr-FR")]   // the lines are English: a point, not the locale's comma
    public void Sizes_read_as_people_read_them(long bytes, string expected) =>
        Assert.That(ByteSize.Format(bytes), Is.EqualTo(expected));
}
