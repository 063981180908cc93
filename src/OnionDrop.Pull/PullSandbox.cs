using System.ComponentModel;
using System.Runtime.InteropServices;

namespace OnionDrop.Pull;

/// <summary>
/// What `oniondrop pull --stdio` gives up before it reads a byte from the journalist's SSH session or from the daemon.
/// sshd runs it as the daemon's user but outside the unit's sandbox, and it parses what the daemon sends (relayed
/// through pull.sock) or what the daemon wrote (the catalog, with the daemon stopped): a daemon compromised inside its
/// sandbox must not gain, through a bug in this parsing, what the unit keeps from it. So, for the whole process and
/// whatever it might run: no new privileges (setuid and setgid programs such as crontab or at run without them, as
/// the unit's NoNewPrivileges=yes); sockets of the Unix family only (pull.sock): no IP connection to anywhere, the
/// machine itself and its networks included (the unit's IPAddressDeny=, stricter); and, where the kernel has
/// Landlock, writes beneath the data directory only (not /tmp, /var/tmp, /dev/shm, which any account may write).
/// The store already sets the umask to 0077 (docs/operations.md, "SSH for journalists").
/// </summary>
public static class PullSandbox
{
    private const int PR_SET_NO_NEW_PRIVS = 38;
    private const long SYS_seccomp = 317; // x86-64 Linux, as the build targets
    private const uint SECCOMP_SET_MODE_FILTER = 1, SECCOMP_FILTER_FLAG_TSYNC = 1;
    private const uint AUDIT_ARCH_X86_64 = 0xC000003E, X32_SYSCALL_BIT = 0x40000000;
    private const uint SYS_socket = 41, SYS_io_uring_setup = 425;
    private const uint AF_UNIX = 1;
    private const uint RET_ALLOW = 0x7fff0000, RET_ERRNO = 0x00050000;
    private const uint EPERM = 1, ENOSYS = 38, EAFNOSUPPORT = 97;
    private const ushort LD_W_ABS = 0x20, JEQ_K = 0x15, JGE_K = 0x35, RET_K = 0x06;

    [StructLayout(LayoutKind.Sequential)]
    private struct SockFilter(ushort code, byte jt, byte jf, uint k)
    {
        public ushort Code = code;
        public byte Jt = jt, Jf = jf;
        public uint K = k;
    }

    [StructLayout(LayoutKind.Sequential)]
    private unsafe struct SockFprog
    {
        public ushort Len;
        public SockFilter* Filter;
    }

    /// <summary>
    /// The seccomp filter, in classic BPF (forward jumps only): the native architecture and no x32 calls; no io_uring
    /// (its requests could open sockets past this filter; .NET does not use it); socket() for AF_UNIX only, any other
    /// family failing with EAFNOSUPPORT as under RestrictAddressFamilies=. Everything else is allowed.
    /// </summary>
    private static readonly SockFilter[] Filter =
    [
        /* 0 */ new(LD_W_ABS, 0, 0, 4),                      // seccomp_data.arch
        /* 1 */ new(JEQ_K, 0, 9, AUDIT_ARCH_X86_64),         // else 11
        /* 2 */ new(LD_W_ABS, 0, 0, 0),                      // seccomp_data.nr
        /* 3 */ new(JGE_K, 7, 0, X32_SYSCALL_BIT),           // x32: 11
        /* 4 */ new(JEQ_K, 5, 0, SYS_io_uring_setup),        // 10
        /* 5 */ new(JEQ_K, 0, 2, SYS_socket),                // else 8
        /* 6 */ new(LD_W_ABS, 0, 0, 16),                     // seccomp_data.args[0], low half: the family
        /* 7 */ new(JEQ_K, 0, 1, AF_UNIX),                   // 8, else 9
        /* 8 */ new(RET_K, 0, 0, RET_ALLOW),
        /* 9 */ new(RET_K, 0, 0, RET_ERRNO | EAFNOSUPPORT),
        /* 10 */ new(RET_K, 0, 0, RET_ERRNO | ENOSYS),
        /* 11 */ new(RET_K, 0, 0, RET_ERRNO | EPERM),
    ];

    /// <summary>Set in the environment of the process <see cref="Enter"/> re-executes, whose writes Landlock already confines.</summary>
    public const string ConfinedVariable = "ODPULL_WRITES_CONFINED";

    /// <summary>
    /// Applies the restrictions to every thread of this process, for good. Throws (and the pull then serves nothing)
    /// if the kernel refuses one: a pull that runs is a restricted pull. Where the kernel has Landlock, the first call
    /// does not return: Landlock binds only the thread that asks, so that thread asks and then executes this same
    /// command again (same arguments, same environment plus <see cref="ConfinedVariable"/>), whose every thread is
    /// born confined.
    /// </summary>
    public static unsafe void Enter(string dataDir)
    {
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw Failed("prctl(PR_SET_NO_NEW_PRIVS)");
        if (Environment.GetEnvironmentVariable(ConfinedVariable) != "1") ConfineWritesAndRunAgain(dataDir);
        fixed (SockFilter* filter = Filter)
        {
            var program = new SockFprog { Len = (ushort)Filter.Length, Filter = filter };
            // TSYNC: every thread the runtime already started gets the filter (and no_new_privs) too.
            var rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, (nint)(&program));
            if (rc != 0) throw rc > 0 ? new InvalidOperationException($"seccomp: thread {rc} could not take the filter") : Failed("seccomp");
        }
    }

    private const long SYS_landlock_create_ruleset = 444, SYS_landlock_add_rule = 445, SYS_landlock_restrict_self = 446;
    private const int LANDLOCK_CREATE_RULESET_VERSION = 1, LANDLOCK_RULE_PATH_BENEATH = 1;
    private const int O_PATH = 0x200000, O_DIRECTORY = 0x10000, O_CLOEXEC = 0x80000;

    [StructLayout(LayoutKind.Sequential, Pack = 1)]
    private struct PathBeneath
    {
        public ulong AllowedAccess;
        public int ParentFd;
    }

    /// <summary>Every right that writes, by Landlock ABI: write, remove, make (file, dir, socket, fifo, link, device), then refer (2) and truncate (3).</summary>
    private static ulong WriteRights(long abi)
    {
        ulong rights = 1UL << 1; // WRITE_FILE
        for (var bit = 4; bit <= 12; bit++) rights |= 1UL << bit; // REMOVE_DIR, REMOVE_FILE, MAKE_CHAR ... MAKE_SYM
        if (abi >= 2) rights |= 1UL << 13; // REFER
        if (abi >= 3) rights |= 1UL << 14; // TRUNCATE
        return rights;
    }

    /// <summary>Without Landlock in the kernel (or the LSM not enabled) it returns, and writes stay the account's.</summary>
    private static unsafe void ConfineWritesAndRunAgain(string dataDir)
    {
        var abi = syscall(SYS_landlock_create_ruleset, 0, 0, LANDLOCK_CREATE_RULESET_VERSION);
        if (abi < 1) return;
        // The runtime made its debugger pipes and diagnostics socket in TMPDIR at start, and an exec removes nothing:
        // take them away while it may (the next image runs with DOTNET_EnableDiagnostics=0 and makes none).
        foreach (var prefix in new[] { "clr-debug-pipe-", "dotnet-diagnostic-" })
            foreach (var own in Directory.EnumerateFileSystemEntries(Path.GetTempPath(), $"{prefix}{Environment.ProcessId}-*"))
                try { File.Delete(own); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        var handled = WriteRights(abi);
        var ruleset = (int)syscall(SYS_landlock_create_ruleset, (nuint)(&handled), sizeof(ulong), 0);
        if (ruleset < 0) throw Failed("landlock_create_ruleset");
        try
        {
            var dir = open(dataDir, O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (dir < 0) throw Failed($"open {dataDir}");
            var rule = new PathBeneath { AllowedAccess = handled, ParentFd = dir };
            var added = syscall4(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, (nint)(&rule), 0);
            var error = Marshal.GetLastPInvokeError();
            close(dir);
            if (added != 0) { Marshal.SetLastPInvokeError(error); throw Failed("landlock_add_rule"); }
            if (syscall(SYS_landlock_restrict_self, (nuint)ruleset, 0, 0) != 0) throw Failed("landlock_restrict_self");
        }
        finally { close(ruleset); }

        var argv = File.ReadAllText("/proc/self/cmdline").Split('\0')[..^1];
        var environment = Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>()
            .Where(e => (string)e.Key is not ConfinedVariable and not "DOTNET_EnableDiagnostics")
            .Select(e => $"{e.Key}={e.Value}")
            .Append($"{ConfinedVariable}=1")
            .Append("DOTNET_EnableDiagnostics=0"); // no diagnostics socket, which it could not make in /tmp now anyway
        execve("/proc/self/exe", [.. argv, null], [.. environment, null]);
        throw Failed("execve");
    }

    private static Exception Failed(string what) =>
        new InvalidOperationException($"{what}: {new Win32Exception(Marshal.GetLastPInvokeError()).Message}");

    [DllImport("libc", SetLastError = true)] private static extern int prctl(int option, nuint arg2, nuint arg3, nuint arg4, nuint arg5);
    [DllImport("libc", SetLastError = true)] private static extern long syscall(long number, nuint arg1, nuint arg2, nint arg3);
    [DllImport("libc", SetLastError = true, EntryPoint = "syscall")] private static extern long syscall4(long number, nint arg1, nint arg2, nint arg3, nint arg4);
    [DllImport("libc", SetLastError = true)] private static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int close(int fd);
    [DllImport("libc", SetLastError = true)]
    private static extern int execve(string path,
        [MarshalAs(UnmanagedType.LPArray, ArraySubType = UnmanagedType.LPStr)] string?[] argv,
        [MarshalAs(UnmanagedType.LPArray, ArraySubType = UnmanagedType.LPStr)] string?[] envp);
}
