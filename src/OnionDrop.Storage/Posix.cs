using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using OnionDrop.Files;

namespace OnionDrop.Storage;

/// <summary>
/// The POSIX calls .NET does not expose that the store, fetch, the pull relay and status need: flock, umask, and open
/// without following a link (fsync is in <c>OnionDrop.Files</c>).
/// </summary>
public static class Posix
{
    private const int LOCK_SH = 1, LOCK_EX = 2, LOCK_NB = 4;
    // open(2) flags, x86-64 Linux, as the build targets.
    private const int O_RDONLY = 0, O_RDWR = 2, O_CREAT = 0x40, O_NONBLOCK = 0x800, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000,
        O_CLOEXEC = 0x80000, O_PATH = 0x200000;

    /// <summary>flock(LOCK_EX | LOCK_NB); false when another open file description holds it.</summary>
    public static bool TryLockExclusive(SafeHandle file) => TryLock(file, LOCK_EX);

    /// <summary>flock(LOCK_SH | LOCK_NB); false when another open file description holds it exclusively.</summary>
    public static bool TryLockShared(SafeHandle file) => TryLock(file, LOCK_SH);

    private static bool TryLock(SafeHandle file, int operation)
    {
        var rc = flock((int)file.DangerousGetHandle(), operation | LOCK_NB);
        if (rc == 0) return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == 11 /* EWOULDBLOCK */) return false;
        throw FileSync.ErrnoException("flock", errno);
    }

    /// <summary>
    /// flock(LOCK_EX | LOCK_NB) on a directory itself, held until the returned handle is disposed; null when another
    /// process holds it. Nothing is created in the directory (a lock file would stay behind among the user's files).
    /// </summary>
    public static SafeFileHandle? TryLockDirectory(string path)
    {
        var fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) throw FileSync.ErrnoException(path, Marshal.GetLastPInvokeError());
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        if (TryLockExclusive(handle)) return handle;
        handle.Dispose();
        return null;
    }

    /// <summary>
    /// open(O_NOFOLLOW, read-write [| O_CREAT, 0600] or read-only and non-blocking): a file in a directory another
    /// user may write, opened without following a link planted there (ELOOP becomes an IOException naming it) and,
    /// read-only, without blocking on a FIFO planted there.
    /// </summary>
    public static SafeFileHandle OpenNoFollow(string path, bool create, bool readOnly = false)
    {
        var flags = O_NOFOLLOW | O_CLOEXEC | (readOnly ? O_RDONLY | O_NONBLOCK : O_RDWR) | (create ? O_CREAT : 0);
        var fd = open(path, flags, 0b110_000_000);
        if (fd >= 0) return new SafeFileHandle(fd, ownsHandle: true);
        var errno = Marshal.GetLastPInvokeError();
        throw errno switch
        {
            2 /* ENOENT */ => new FileNotFoundException(null, path),
            13 /* EACCES */ => new UnauthorizedAccessException($"{path}: permission denied"),
            40 /* ELOOP */ => new IOException($"{path} is a symbolic link: refused"),
            _ => FileSync.ErrnoException(path, errno),
        };
    }

    /// <summary>
    /// open(O_PATH | O_NOFOLLOW): a handle on the directory entry itself, never on what a link planted there names.
    /// A Unix socket is then reached through "/proc/self/fd/N" (<see cref="PathOf"/>): the socket this handle holds,
    /// whatever is renamed into its place after the check, and nothing at all (ECONNREFUSED) if it is a link.
    /// </summary>
    public static SafeFileHandle OpenPathNoFollow(string path)
    {
        var fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0) return new SafeFileHandle(fd, ownsHandle: true);
        var errno = Marshal.GetLastPInvokeError();
        throw errno == 2 /* ENOENT */ ? new FileNotFoundException(null, path) : FileSync.ErrnoException(path, errno);
    }

    /// <summary>The path by which this process reaches an open handle's file.</summary>
    public static string PathOf(SafeFileHandle handle) => $"/proc/self/fd/{handle.DangerousGetHandle()}";

    /// <summary>Sets the process umask (octal bits) and returns the previous one.</summary>
    public static int SetUmask(int mask) => umask(mask);

    [DllImport("libc", SetLastError = true)] private static extern int flock(int fd, int operation);
    [DllImport("libc", SetLastError = true)] private static extern int umask(int mask);
    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags, int mode = 0);
}
