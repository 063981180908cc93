namespace OnionDrop.Testing;

/// <summary>
/// The test runner's NuGet package folder, linked (cp -al, else copied) where any user may read it, once per test
/// process: install.sh builds as an unprivileged account (`--nuget-packages`), which then downloads nothing, so the
/// install tests reach no network. Removed when the process exits, or by the next one if it was killed.
/// </summary>
public static class NuGetPackagesCopy
{
    private static readonly Lazy<string> Folder = new(Make);

    public static string Path => Folder.Value;

    private static string Make()
    {
        var source = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } set ? set
            : System.IO.Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        // A test host killed rather than ended leaves its copy behind: those of processes gone go now.
        foreach (var stale in Directory.EnumerateDirectories("/tmp", "oniondrop-nuget-*"))
            if (int.TryParse(System.IO.Path.GetFileName(stale)["oniondrop-nuget-".Length..], out var pid) && !PosixProcess.IsAlive(pid))
                try { Directory.Delete(stale, recursive: true); } catch (IOException) { }
        var copy = $"/tmp/oniondrop-nuget-{Environment.ProcessId}";
        var linked = ChildProcess.RunAsync("cp", ["-al", source, copy]).GetAwaiter().GetResult();
        if (linked.ExitCode != 0)
        {
            Directory.Delete(copy, recursive: true);
            var copied = ChildProcess.RunAsync("cp", ["-a", source, copy], TimeSpan.FromMinutes(5)).GetAwaiter().GetResult();
            if (copied.ExitCode != 0) throw new IOException($"could not copy {source}: {copied}");
        }
        File.SetUnixFileMode(copy, (UnixFileMode)Convert.ToInt32("755", 8));
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { Directory.Delete(copy, recursive: true); } catch (IOException) { } };
        return copy;
    }
}
