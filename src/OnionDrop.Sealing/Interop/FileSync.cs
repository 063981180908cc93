using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace OnionDrop.Sealing.Interop;

/// <summary>The two durability calls the opener needs that .NET does not expose for a path or a range.</summary>
internal static class FileSync
{
    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000, EINTR = 4;
    private const uint SYNC_FILE_RANGE_WRITE = 2;

    /// <summary>fsync(2) of a file or directory by path (Linux flushes an inode through any descriptor of it).</summary>
    public static void Fsync(string path)
    {
        var fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) throw Error("open", path);
        try
        {
            int rc;
            do rc = fsync(fd); while (rc < 0 && Marshal.GetLastPInvokeError() == EINTR);
            if (rc < 0) throw Error("fsync", path);
        }
        finally { close(fd); }
    }

    /// <summary>
    /// Asks the kernel to start writing a range out now (sync_file_range SYNC_FILE_RANGE_WRITE): a hint with no
    /// durability promise, so the final fsync finds little left to do. Failure is ignored: fsync still follows.
    /// </summary>
    public static void StartWriteback(SafeFileHandle file, long offset, long count) =>
        sync_file_range((int)file.DangerousGetHandle(), offset, count, SYNC_FILE_RANGE_WRITE);

    private static IOException Error(string call, string path) =>
        new($"{call} {path}: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");

    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fsync(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int sync_file_range(int fd, long offset, long nbytes, uint flags);
}
