using System.ComponentModel;
using System.Runtime.InteropServices;

namespace OnionDrop.Storage;

/// <summary>The POSIX calls the store needs that .NET does not expose: flock, umask (fsync is in <c>OnionDrop.Files</c>).</summary>
public static class Posix
{
    private const int LOCK_EX = 2, LOCK_NB = 4;

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

    [DllImport("libc", SetLastError = true)] private static extern int flock(int fd, int operation);
    [DllImport("libc", SetLastError = true)] private static extern int umask(int mask);
}
