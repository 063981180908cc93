using NUnit.Framework;

namespace OnionDrop.Testing;

/// <summary>
/// A USB stick as journalists carry one: a small exFAT file system (mkfs.exfat on an image file, attached to a loop
/// device, mounted by exfat-fuse: this kernel has no FAT driver, /dev/fuse is there). No Unix modes (everything shows
/// 0777, chmod is ignored), no hard or symbolic links, names that differ only in case are one name, and it fills up
/// for real. Needs root and Debian's exfatprogs and exfat-fuse (scripts/setup-deps); a test that cannot mount one
/// fails, saying why, rather than passing without the stick. Unmounted, detached and deleted on dispose.
/// </summary>
public sealed class ExFatStick : IAsyncDisposable
{
    private readonly TempDirectory _scratch;
    private readonly string _device;

    private ExFatStick(TempDirectory scratch, string device) => (_scratch, _device) = (scratch, device);

    /// <summary>Where the stick is mounted.</summary>
    public string Path => _scratch.Combine("mnt");

    public string Combine(params string[] parts) => System.IO.Path.Combine([Path, .. parts]);

    public long FreeBytes => new DriveInfo(Path).AvailableFreeSpace;

    public static async Task<ExFatStick> MountAsync(int sizeMiB)
    {
        if (Environment.UserName != "root") Assert.Fail("an exFAT stick needs root (a loop device and a FUSE mount): run the tests as root, as scripts/test and CI do");
        foreach (var tool in new[] { "/usr/sbin/mkfs.exfat", "/usr/sbin/mount.exfat-fuse" })
            if (!File.Exists(tool)) Assert.Fail($"{tool} is missing: install exfatprogs and exfat-fuse (scripts/setup-deps does)");
        var scratch = new TempDirectory("oniondrop-exfat-");
        var image = scratch.Combine("stick.img");
        Directory.CreateDirectory(scratch.Combine("mnt"));
        await using (var f = new FileStream(image, FileMode.CreateNew)) f.SetLength((long)sizeMiB << 20);
        await Run(scratch, "mkfs.exfat", image);
        // exfat-fuse wants a block device: the image is attached to the first free loop device.
        var losetup = await ChildProcess.RunAsync("losetup", ["--find", "--show", image]);
        if (losetup.ExitCode != 0) Fail(scratch, $"losetup --find --show {image}: {losetup}");
        var device = losetup.Stdout.Trim();
        var mount = await ChildProcess.RunAsync("mount.exfat-fuse", [device, scratch.Combine("mnt")]);
        if (mount.ExitCode != 0)
        {
            await ChildProcess.RunAsync("losetup", ["--detach", device]);
            Fail(scratch, $"mount.exfat-fuse {device}: {mount}");
        }
        return new ExFatStick(scratch, device);
    }

    /// <summary>Takes the free space but <paramref name="leave"/> bytes, in a file named <paramref name="name"/>.</summary>
    public string Fill(long leave = 0, string name = "filler")
    {
        var path = Combine(name);
        using var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[64 * 1024];
        try
        {
            for (var left = FreeBytes - leave; left > 0; left -= block.Length) f.Write(block, 0, (int)Math.Min(block.Length, left));
            if (leave > 0) return path;
            while (true) f.Write(block, 0, 512); // to the last cluster
        }
        catch (IOException) when (leave == 0) { }
        return path;
    }

    private static async Task Run(TempDirectory scratch, string file, params string[] args)
    {
        var result = await ChildProcess.RunAsync(file, args, TimeSpan.FromMinutes(1));
        if (result.ExitCode != 0) Fail(scratch, $"{file} {string.Join(' ', args)}: {result}");
    }

    private static void Fail(TempDirectory scratch, string why)
    {
        scratch.Dispose();
        Assert.Fail("cannot make an exFAT stick: " + why);
    }

    public async ValueTask DisposeAsync()
    {
        // umount returns once exfat-fuse has let go of the mount; the daemon itself may still be closing the device.
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if ((await ChildProcess.RunAsync("umount", [Path], TimeSpan.FromSeconds(30))).ExitCode == 0) break;
            await Task.Delay(250); // a process that just exited may still hold a file there
        }
        for (var attempt = 0; attempt < 20; attempt++)
        {
            if ((await ChildProcess.RunAsync("losetup", ["--detach", _device], TimeSpan.FromSeconds(30))).ExitCode == 0) break;
            await Task.Delay(250);
        }
        _scratch.Dispose();
    }
}
