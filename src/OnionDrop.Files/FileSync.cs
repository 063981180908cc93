using System.ComponentModel;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace OnionDrop.Files;

/// <summary>The file calls the store, the opener and fetch need that .NET does not expose: fsync by path (file or directory), writeback of a range, O_DIRECT, a reservation with errno.</summary>
public static class FileSync
{
    private const int O_RDONLY = 0, O_CLOEXEC = 0x80000, O_DIRECT = 0x4000, EINTR = 4, F_GETFL = 3, F_SETFL = 4, FALLOC_FL_KEEP_SIZE = 1;
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

    /// <summary>
    /// Reserves <paramref name="length"/> bytes for an open file (fallocate, its size kept): a full disk or a file
    /// larger than the file system takes fails here, with errno (<see cref="WriteFailure"/>), rather than midway.
    /// .NET's PreallocationSize says either without errno, so EFBIG (tmpfs checks a file size limit here) could not
    /// be told from anything else. Any other failure (EOPNOTSUPP: exFAT through FUSE) is ignored: the writes say it.
    /// </summary>
    public static void Reserve(SafeFileHandle file, string path, long length)
    {
        if (length <= 0) return;
        int rc;
        do rc = fallocate((int)file.DangerousGetHandle(), FALLOC_FL_KEEP_SIZE, 0, length); while (rc < 0 && Marshal.GetLastPInvokeError() == EINTR);
        if (rc < 0 && Marshal.GetLastPInvokeError() is WriteFailure.ENOSPC or WriteFailure.EFBIG) throw Error("fallocate", path);
    }

    /// <summary>Turns on O_DIRECT for an open file; false where the filesystem refuses the flag.</summary>
    public static bool TrySetDirectIo(SafeHandle file)
    {
        var fd = (int)file.DangerousGetHandle();
        var flags = fcntl(fd, F_GETFL, 0);
        return flags >= 0 && fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
    }

    /// <summary>Turns O_DIRECT off again: later writes go through the page cache.</summary>
    public static void ClearDirectIo(SafeHandle file)
    {
        var fd = (int)file.DangerousGetHandle();
        var flags = fcntl(fd, F_GETFL, 0);
        if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_DIRECT) != 0)
            throw ErrnoException("fcntl", Marshal.GetLastPInvokeError());
    }

    /// <summary>FAT's largest file (4 GiB less a byte), where statfs says the file system is FAT (the kernel's vfat or msdos).</summary>
    public const long FatMaxFileBytes = uint.MaxValue;
    private const long MsdosSuperMagic = 0x4d44;

    /// <summary>
    /// The largest file <paramref name="path"/>'s file system takes, as far as it matters here: FAT32's 4 GiB less a
    /// byte, known by statfs; long.MaxValue for any other (ext4's 16 TiB, exFAT's and NTFS's more, are no blob's size).
    /// FAT through FUSE shows as "fuse": a write there past its limit fails with EFBIG instead (<see cref="WriteFailure"/>).
    /// </summary>
    public static long MaxFileBytes(string path) => FileSystemType(path) == MsdosSuperMagic ? FatMaxFileBytes : long.MaxValue;

    /// <summary>statfs(2)'s f_type (the file system's magic number, as `stat -f -c %t` shows it in hex); null if statfs fails.</summary>
    public static long? FileSystemType(string path)
    {
        var buffer = new byte[256];   // struct statfs: 120 bytes on x86-64, f_type first
        return statfs(path, buffer) == 0 ? BitConverter.ToInt64(buffer, 0) : null;
    }

    /// <summary>
    /// A failed call's IOException, with errno as its HResult as .NET's own IOExceptions carry it (a full disk shows as
    /// <see cref="WriteFailure.IsDiskFull"/>), and strerror's words after <paramref name="what"/>.
    /// </summary>
    public static IOException ErrnoException(string what, int errno) => new($"{what}: {new Win32Exception(errno).Message}", errno);

    private static IOException Error(string call, string path) => ErrnoException($"{call} {path}", Marshal.GetLastPInvokeError());

    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fsync(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int fcntl(int fd, int cmd, int arg);
    [DllImport("libc", SetLastError = true)] private static extern int statfs(string path, byte[] buf);
    [DllImport("libc", SetLastError = true)] private static extern int sync_file_range(int fd, long offset, long nbytes, uint flags);
    [DllImport("libc", SetLastError = true)] private static extern int fallocate(int fd, int mode, long offset, long len);
}
