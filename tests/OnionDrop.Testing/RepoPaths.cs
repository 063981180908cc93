namespace OnionDrop.Testing;

/// <summary>Finds the repository and the things built in it, wherever the test runner runs from.</summary>
public static class RepoPaths
{
    public static string Root { get; } = FindRoot();

    public static string Vectors => Path.Combine(Root, "tests", "vectors");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "OnionDrop.sln")))
                return dir.FullName;
        throw new InvalidOperationException("OnionDrop.sln not found above " + AppContext.BaseDirectory);
    }
}
