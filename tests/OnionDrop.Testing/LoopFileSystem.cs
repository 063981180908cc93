namespace OnionDrop.Testing;

/// <summary>
/// A small ext4 file system of its own (an image file, mkfs.ext4, mount -o loop; needs root), so a test can
/// fill a disk without touching the machine's. Unmounted and deleted on dispose.
/// </summary>
public sealed class LoopFileSystem : IDisposable
{
    private readonly string _image;
    public string MountPoint { get; }

    private LoopFileSystem(string image, string mountPoint) => (_image, MountPoint) = (image, mountPoint);

    public static async Task<LoopFileSystem> MountAsync(string scratch, long bytes)
    {
        var image = Path.Combine(scratch, "fs.img");
        var mountPoint = Path.Combine(scratch, "mnt");
        Directory.CreateDirectory(mountPoint);
        await using (var f = new FileStream(image, FileMode.CreateNew)) f.SetLength(bytes);
        // -m 0: no blocks reserved for root (the daemon runs as root in tests); no journal-less tricks.
        await Run("mkfs.ext4", "-q", "-F", "-m", "0", image);
        await Run("mount", "-o", "loop", image, mountPoint);
        return new LoopFileSystem(image, mountPoint);
    }

    public long FreeBytes => new DriveInfo(MountPoint).AvailableFreeSpace;

    /// <summary>A file that takes all but <paramref name="leaveFree"/> bytes of the free space (0: to the last byte).</summary>
    public string Fill(long leaveFree)
    {
        var path = Path.Combine(MountPoint, "filler");
        using var f = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);
        var buffer = new byte[64 * 1024];
        try
        {
            while (FreeBytes > leaveFree + buffer.Length)
            {
                f.Write(buffer);
                f.Flush(flushToDisk: true);
            }
            if (leaveFree > 0) return path;
            while (true) { f.Write(buffer, 0, 512); f.Flush(flushToDisk: true); }
        }
        catch (IOException) when (leaveFree == 0) { } // the last byte is taken
        return path;
    }

    private static async Task Run(string file, params string[] args)
    {
        var result = await ChildProcess.RunAsync(file, args, TimeSpan.FromSeconds(60));
        if (result.ExitCode != 0) throw new InvalidOperationException($"{file} {string.Join(' ', args)}: {result}");
    }

    public void Dispose()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var umount = ChildProcess.RunAsync("umount", [MountPoint], TimeSpan.FromSeconds(30)).GetAwaiter().GetResult();
            if (umount.ExitCode == 0) break;
            Thread.Sleep(250); // a process that just exited may still hold a file there
        }
        try { File.Delete(_image); } catch (IOException) { }
    }
}
