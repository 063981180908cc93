using OnionDrop.Testing;

namespace OnionDrop.Cli.Tests;

public class HarnessTests
{
    [Test]
    public void RepoRootHoldsTheSolution() =>
        Assert.That(File.Exists(Path.Combine(RepoPaths.Root, "OnionDrop.sln")), Is.True);
}
