using NUnit.Framework;

namespace OnionDrop.Testing;

/// <summary>
/// A tmpfs of a few MiB mounted on a scratch folder: a disk that fills up for real. Needs root (the test is
/// ignored otherwise); unmounted and removed on dispose.
/// </summary>
public sealed class SmallTmpfs : IAsyncDisposable
{
    private readonly TempDirectory _mountPoint;

    private SmallTmpfs(TempDirectory mountPoint) => _mountPoint = mountPoint;

    public string Path => _mountPoint.Path;

    public string Combine(params string[] parts) => _mountPoint.Combine(parts);

    public static async Task<SmallTmpfs> MountAsync(int sizeMiB)
    {
        var mountPoint = new TempDirectory("oniondrop-smallfs-");
        var mount = await ChildProcess.RunAsync("mount", ["-t", "tmpfs", "-o", $"size={sizeMiB}m,mode=0700", "tmpfs", mountPoint.Path]);
        if (mount.ExitCode == 0) return new SmallTmpfs(mountPoint);
        mountPoint.Dispose();
        // Skipped only where it cannot run: as root (as CI runs) a failed mount is a failure, not a quiet skip.
        if (Environment.UserName != "root") Assert.Ignore("needs root to mount a small tmpfs: " + mount.Stderr.Trim());
        Assert.Fail("mount of a small tmpfs failed as root: " + mount.Stderr.Trim());
        throw new InvalidOperationException("unreachable");
    }

    /// <summary>Takes the free space but <paramref name="leave"/> bytes, in a file at <paramref name="path"/>.</summary>
    public static void Fill(string path, long leave = 0)
    {
        using var f = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 0);
        var block = new byte[64 * 1024];
        var free = new DriveInfo(System.IO.Path.GetDirectoryName(path)!).AvailableFreeSpace;
        try
        {
            for (var left = free - leave; left > 0; left -= block.Length) f.Write(block, 0, (int)Math.Min(block.Length, left));
            if (leave > 0) return;
            while (true) f.Write(block, 0, 1); // the last bytes the file system can give
        }
        catch (IOException) { }
    }

    public async ValueTask DisposeAsync()
    {
        await ChildProcess.RunAsync("umount", ["-l", _mountPoint.Path]);
        _mountPoint.Dispose();
    }
}
