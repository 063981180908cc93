using OnionDrop.Files;
using OnionDrop.Testing;

namespace OnionDrop.Files.Tests;

/// <summary>
/// statfs's file system type, read by hand from the C struct: FAT32's 4 GiB limit is known by it before fetch asks for
/// a blob no file there can hold. No FAT mounts here (no vfat in this kernel), so the reading itself is checked
/// against `stat -f` on the file systems that do: tmpfs, and an exFAT stick through FUSE.
/// </summary>
public class FileSystemTypeTests
{
    private static async Task<long> StatSaysAsync(string path)
    {
        var stat = await ChildProcess.RunAsync("stat", ["-f", "-c", "%t", path]);
        Assert.That(stat.ExitCode, Is.Zero, stat.ToString());
        return Convert.ToInt64(stat.Stdout.Trim(), 16);
    }

    [Test]
    public async Task The_type_is_the_one_stat_shows_and_only_FAT_limits_a_file_to_4_GiB()
    {
        await using var tmpfs = await SmallTmpfs.MountAsync(1);
        await using var stick = await ExFatStick.MountAsync(8);

        Assert.That(FileSync.FileSystemType(tmpfs.Path), Is.EqualTo(await StatSaysAsync(tmpfs.Path)).And.EqualTo(0x01021994));
        Assert.That(FileSync.FileSystemType(stick.Path), Is.EqualTo(await StatSaysAsync(stick.Path)).And.EqualTo(0x65735546), "fuseblk");
        Assert.That(FileSync.MaxFileBytes(tmpfs.Path), Is.EqualTo(long.MaxValue));
        Assert.That(FileSync.MaxFileBytes(stick.Path), Is.EqualTo(long.MaxValue), "exFAT through FUSE: a write past a limit fails instead");
        Assert.That(FileSync.FileSystemType(Path.Combine(tmpfs.Path, "no-such-folder")), Is.Null);
        Assert.That(FileSync.FatMaxFileBytes, Is.EqualTo((4L << 30) - 1));
    }
}
