using System.Diagnostics;

namespace OnionDrop.Testing;

/// <summary>
/// The built `oniondrop` run with a file size limit (RLIMIT_FSIZE, soft), so that a write past it fails with the
/// kernel's EFBIG, as one past FAT32's 4 GiB does: no FAT32 can be mounted here. SIGXFSZ is ignored (a shell's
/// trap, kept across exec) so the write fails instead of the process being killed.
/// </summary>
public static class FileSizeLimited
{
    public static ProcessStartInfo StartInfo(long limitBytes, params string[] args)
    {
        var psi = ChildProcess.StartInfo("sh", ["-c", "trap '' XFSZ; exec prlimit --fsize=\"$0\": dotnet \"$@\"", limitBytes.ToString(), Oniondrop.Dll, .. args]);
        // The runtime maps its code through a file of its own, which a small limit would refuse.
        psi.Environment["DOTNET_EnableWriteXorExecute"] = "0";
        return psi;
    }

    /// <summary>A command, for --via, that runs <paramref name="command"/> without the limit (the hard limit allows it).</summary>
    public static string Unlimited(string command) => $"prlimit --fsize=unlimited: {command}";
}
