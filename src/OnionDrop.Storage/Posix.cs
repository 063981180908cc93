using System.ComponentModel;
using System.Runtime.InteropServices;

namespace OnionDrop.Storage;

/// <summary>The few POSIX calls .NET does not expose: directory fsync, flock, umask, O_DIRECT.</summary>
public static class Posix
{
    private const int O_RDONLY = 0, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;
    private const int LOCK_EX = 2, LOCK_NB = 4;
    private const int EINTR = 4;
    private const int F_GETFL = 3, F_SETFL = 4, O_DIRECT = 0x4000;

    /// <summary>Makes a rename or unlink in <paramref name="directory"/> durable.</summary>
    public static void FsyncDirectory(string directory)
    {
        var fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) throw Error("open", directory);
        try
        {
            int rc;
            do rc = fsync(fd); while (rc < 0 && Marshal.GetLastPInvokeError() == EINTR);
            if (rc < 0) throw Error("fsync", directory);
        }
        finally { close(fd); }
    }

    /// <summary>flock(LOCK_EX | LOCK_NB); false when another open file description holds it.</summary>
    public static bool TryLockExclusive(SafeHandle file)
    {
        var rc = flock((int)file.DangerousGetHandle(), LOCK_EX | LOCK_NB);
        if (rc == 0) return true;
        var errno = Marshal.GetLastPInvokeError();
        if (errno == 11 /* EWOULDBLOCK */) return false;
        throw new IOException($"flock: {new Win32Exception(errno).Message}");
    }

    /// <summary>Sets the process umask (octal bits) and returns the previous one.</summary>
    public static int SetUmask(int mask) => umask(mask);

    /// <summary>Turns on O_DIRECT for an open file; false where the filesystem does not support it (tmpfs).</summary>
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
            throw new IOException($"fcntl: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");
    }

    private static IOException Error(string call, string path) =>
        new($"{call} {path}: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");

    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fsync(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)] private static extern int flock(int fd, int operation);
    [DllImport("libc", SetLastError = true)] private static extern int umask(int mask);
    [DllImport("libc", SetLastError = true)] private static extern int fcntl(int fd, int cmd, int arg);
}
