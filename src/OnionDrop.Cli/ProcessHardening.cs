using System.Runtime.InteropServices;

namespace OnionDrop.Cli;

/// <summary>
/// Every oniondrop process may hold what must never reach a disk or another program: a journalist's secret key and
/// opened plaintext (open, fetch --open, keygen), a source's bytes on their way to the sealer (serve). Marked not
/// dumpable, a crash leaves no core file (with the kernel's default fs.suid_dumpable = 0, Debian's), and no other
/// process of the same user can attach to it or read its memory through /proc. (The unit's LimitCORE=0 covers the
/// daemon only when systemd runs it; this covers every command, however it is started.)
/// </summary>
internal static class ProcessHardening
{
    private const int PR_SET_DUMPABLE = 4;

    public static void KeepMemoryToItself()
    {
        // Best effort: a kernel that refuses leaves the process as it was, which is no reason to refuse the command.
        if (OperatingSystem.IsLinux()) _ = prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    }

    [DllImport("libc", SetLastError = true)] private static extern int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
}
