using System.Runtime.InteropServices;

namespace OnionDrop.Tor;

/// <summary>A local account as the kernel sees it for permission checks: uid, primary group, supplementary groups.</summary>
public sealed record UnixAccount(int Uid, string Name, int PrimaryGid, IReadOnlySet<int> Groups)
{
    public bool IsIn(int gid) => gid == PrimaryGid || Groups.Contains(gid);

    /// <summary>From /etc/passwd and /etc/group (system accounts such as debian-tor are local); null if unknown.</summary>
    public static UnixAccount? Find(int uid, string etc = "/etc")
    {
        foreach (var fields in Entries(Path.Combine(etc, "passwd")))
        {
            if (fields.Length < 4 || fields[2] != uid.ToString() || !int.TryParse(fields[3], out var gid)) continue;
            var name = fields[0];
            var groups = Entries(Path.Combine(etc, "group"))
                .Where(g => g.Length >= 4 && g[3].Split(',').Contains(name) && int.TryParse(g[2], out _))
                .Select(g => int.Parse(g[2])).ToHashSet();
            return new UnixAccount(uid, name, gid, groups);
        }
        return null;
    }

    public static int? GroupId(string name, string etc = "/etc") =>
        Entries(Path.Combine(etc, "group")).Where(g => g.Length >= 3 && g[0] == name && int.TryParse(g[2], out _))
            .Select(g => (int?)int.Parse(g[2])).FirstOrDefault();

    public static string UserName(int uid, string etc = "/etc") =>
        Entries(Path.Combine(etc, "passwd")).FirstOrDefault(f => f.Length >= 3 && f[2] == uid.ToString())?[0] ?? uid.ToString();

    public static string GroupName(int gid, string etc = "/etc") =>
        Entries(Path.Combine(etc, "group")).FirstOrDefault(f => f.Length >= 3 && f[2] == gid.ToString())?[0] ?? gid.ToString();

    private static IEnumerable<string[]> Entries(string file) =>
        File.Exists(file) ? File.ReadLines(file).Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split(':')) : [];
}

/// <summary>
/// What .NET does not expose: a file's owner and group (statx), changing its group (chown), our own uid,
/// and the kernel's rule for whether an account may connect to a Unix socket (search on every directory of
/// the path, write on the socket).
/// </summary>
public static class UnixAccess
{
    public sealed record Stat(int Uid, int Gid, UnixFileMode Mode);

    /// <summary>Owner, group and permission bits of <paramref name="path"/> (following symlinks).</summary>
    public static Stat Of(string path)
    {
        // struct statx is the same on every architecture: stx_uid at 20, stx_gid at 24, stx_mode (u16) at 28.
        var buffer = new byte[256];
        if (statx(AtFdCwd, path, 0, StatxBasicStats, buffer) != 0)
            throw new IOException($"cannot stat {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        return new Stat(BitConverter.ToInt32(buffer, 20), BitConverter.ToInt32(buffer, 24), (UnixFileMode)(BitConverter.ToUInt16(buffer, 28) & 0xFFF));
    }

    /// <summary>chgrp: allowed to the owner for a group it is in.</summary>
    public static void ChangeGroup(string path, int gid)
    {
        if (chown(path, uint.MaxValue, (uint)gid) != 0)
            throw new IOException($"cannot give {path} to group {UnixAccount.GroupName(gid)}: {Marshal.GetLastPInvokeErrorMessage()}");
    }

    public static int EffectiveUid => (int)geteuid();

    /// <summary>Whether this process may make files in the directory <paramref name="path"/> (access(2) for the effective uid: modes, a read-only mount).</summary>
    public static bool MayWrite(string path) => faccessat(AtFdCwd, path, WriteOk | ExecuteOk, AtEaccess) == 0;

    /// <summary>
    /// Why <paramref name="account"/> could not connect to a Unix socket at <paramref name="socketPath"/> owned by
    /// <paramref name="socketOwner"/> and shared (0660) with <paramref name="socketGroup"/>, or (null) 0600; null if it could.
    /// Only the directories need exist yet: the socket itself is made later with that owner, group and mode.
    /// </summary>
    public static string? WhyUnreachable(UnixAccount account, string socketPath, int socketOwner, int? socketGroup)
    {
        if (account.Uid == 0) return null;
        var full = Path.GetFullPath(socketPath);
        var dirs = new List<string>();
        for (var d = Path.GetDirectoryName(full); d is not null; d = Path.GetDirectoryName(d)) dirs.Insert(0, d);
        foreach (var dir in dirs)
        {
            Stat s;
            try { s = Of(dir); }
            catch (IOException e) { return e.Message; }
            if (!May(account, s, UnixFileMode.UserExecute, UnixFileMode.GroupExecute, UnixFileMode.OtherExecute))
                return $"{dir} is {Describe(s)}, which {account.Name} may not enter";
        }
        if (account.Uid == socketOwner) return null;
        if (socketGroup is { } g && account.IsIn(g)) return null;
        return socketGroup is { } group
            ? $"{full} is shared with group {UnixAccount.GroupName(group)}, which {account.Name} is not in"
            : $"{full} is 0600, {UnixAccount.UserName(socketOwner)}'s only";
    }

    public static string Describe(Stat s) =>
        $"{Convert.ToString((int)s.Mode, 8).PadLeft(4, '0')} {UnixAccount.UserName(s.Uid)}:{UnixAccount.GroupName(s.Gid)}";

    private static bool May(UnixAccount a, Stat s, UnixFileMode user, UnixFileMode group, UnixFileMode other) =>
        a.Uid == s.Uid ? (s.Mode & user) != 0 : a.IsIn(s.Gid) ? (s.Mode & group) != 0 : (s.Mode & other) != 0;

    private const int AtFdCwd = -100;
    private const uint StatxBasicStats = 0x7ff;

    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)]
    private static extern int statx(int dirfd, string path, int flags, uint mask, byte[] buffer);

    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)]
    private static extern int chown(string path, uint owner, uint group);

    [DllImport("libc")]
    private static extern uint geteuid();

    private const int WriteOk = 2, ExecuteOk = 1, AtEaccess = 0x200;

    [DllImport("libc", SetLastError = true, CharSet = CharSet.Ansi)]
    private static extern int faccessat(int dirfd, string path, int mode, int flags);
}
