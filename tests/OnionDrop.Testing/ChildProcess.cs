using System.Diagnostics;
using System.Text;

namespace OnionDrop.Testing;

/// <summary>Result of a finished child process.</summary>
public sealed record ProcessResult(int ExitCode, string Stdout, string Stderr)
{
    public override string ToString() => $"exit {ExitCode}\n--- stdout\n{Stdout}\n--- stderr\n{Stderr}";
}

/// <summary>Runs real programs (the built CLI, tor, ssh, chromium) the way a user would.</summary>
public static class ChildProcess
{
    public static ProcessStartInfo StartInfo(string file, IEnumerable<string> args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? Environment.CurrentDirectory,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Tests kill children on purpose; a .NET child killed leaves its debugger pipes and diagnostics socket in /tmp.
        psi.Environment["DOTNET_EnableDiagnostics"] = "0";
        return psi;
    }

    /// <summary>Runs to completion (killed after <paramref name="timeout"/>), feeding <paramref name="stdin"/> if given.</summary>
    public static async Task<ProcessResult> RunAsync(ProcessStartInfo psi, TimeSpan timeout, string? stdin = null)
    {
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start " + psi.FileName);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        using var cts = new CancellationTokenSource(timeout);
        try { await p.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
            throw new TimeoutException($"{psi.FileName} {string.Join(' ', psi.ArgumentList)} ran over {timeout}\n{await stderr}");
        }
        return new ProcessResult(p.ExitCode, await stdout, await stderr);
    }

    public static Task<ProcessResult> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null, string? stdin = null) =>
        RunAsync(StartInfo(file, args), timeout ?? TimeSpan.FromMinutes(2), stdin);
}

/// <summary>
/// The built `oniondrop` executable. Test projects that use it reference src/OnionDrop.Cli, so oniondrop.dll
/// sits beside the test assembly and is always the current build.
/// </summary>
public static class Oniondrop
{
    /// <summary>
    /// oniondrop.dll beside the tests, or, when other accounts cannot reach that folder, a copy of it that they can.
    /// Tests run it as nobody and as the daemon's user too; a checkout in root's home (0700 on Debian: `git clone`
    /// as root on a fresh machine) shuts them out, so there the build output is copied once, per test run, to a
    /// 0755 folder in /tmp, removed when the run ends.
    /// </summary>
    public static string Dll => Runnable.Value;

    private static readonly Lazy<string> Runnable = new(() =>
    {
        var built = AppContext.BaseDirectory;
        if (OthersCanReach(built)) return Path.Combine(built, "oniondrop.dll");
        var copy = Directory.CreateTempSubdirectory("oniondrop-test-bin-").FullName;
        CopyTree(built, copy);
        File.SetUnixFileMode(copy, (UnixFileMode)0b111_101_101);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(copy, recursive: true); } catch (IOException) { } };
        return Path.Combine(copy, "oniondrop.dll");
    });

    private static bool OthersCanReach(string dir)
    {
        for (var d = new DirectoryInfo(dir); d is not null; d = d.Parent)
            if (!d.UnixFileMode.HasFlag(UnixFileMode.OtherExecute)) return false;
        return true;
    }

    private static void CopyTree(string from, string to)
    {
        foreach (var d in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, d)));
        foreach (var f in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
            File.Copy(f, Path.Combine(to, Path.GetRelativePath(from, f)));
    }

    public static ProcessStartInfo StartInfo(params string[] args)
    {
        if (!File.Exists(Dll)) throw new FileNotFoundException("oniondrop.dll not beside the tests: reference src/OnionDrop.Cli", Dll);
        return ChildProcess.StartInfo("dotnet", [Dll, .. args]);
    }

    public static Task<ProcessResult> RunAsync(string[] args, TimeSpan? timeout = null, string? stdin = null) =>
        ChildProcess.RunAsync(StartInfo(args), timeout ?? TimeSpan.FromMinutes(2), stdin);
}
