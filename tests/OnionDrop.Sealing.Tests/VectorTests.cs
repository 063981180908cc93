using System.Text.Json;
using OnionDrop.Testing;

namespace OnionDrop.Sealing.Tests;

/// <summary>
/// tests/vectors (see its README.md): every good_*.sealed opens to good_*.expected/, and every fail_*.sealed
/// is refused by the real `oniondrop open` with a non-zero exit, its one-line reason, and nothing left behind.
/// </summary>
public class VectorTests
{
    private static string Vector(string name) => Path.Combine(RepoPaths.Vectors, name);

    public static IEnumerable<string> GoodVectors() => Names("good_");
    public static IEnumerable<string> FailVectors() => Names("fail_");

    private static IEnumerable<string> Names(string prefix) =>
        Directory.EnumerateFiles(RepoPaths.Vectors, prefix + "*.sealed").Select(Path.GetFileNameWithoutExtension).Order()!;

    [Test]
    public void TheVectorSetIsComplete()
    {
        // The cases the format promises to detect (docs/sealed-format.md, "What the opener refuses").
        string[] required =
        [
            "fail_empty", "fail_unknown_version", "fail_truncated_at_chunk_boundary", "fail_truncated_mid_chunk",
            "fail_missing_final_tag", "fail_bitflip_header", "fail_bitflip_stanza", "fail_bitflip_body",
            "fail_chunks_swapped", "fail_wrong_key", "fail_trailing_garbage",
        ];
        Assert.That(FailVectors(), Is.SupersetOf(required));
        Assert.That(GoodVectors().Count(), Is.GreaterThanOrEqualTo(5));
    }

    [TestCaseSource(nameof(GoodVectors))]
    public void GoodVectorOpensToItsExpectedContent(string name)
    {
        using var key = JournalistKey.Load(Vector("journalist.key"));
        using var output = new TempDirectory();
        OpenedSubmission opened;
        using (var blob = File.OpenRead(Vector(name + ".sealed")))
            opened = SubmissionOpener.Open(blob, key, output.Path, name + ".sealed");

        Assert.That(Directory.EnumerateFileSystemEntries(output.Path), Is.EqualTo(new[] { opened.Directory }), "one folder, nothing else");
        var expectedDir = Vector(name + ".expected");
        var expected = Directory.EnumerateFiles(expectedDir).Select(p => Path.GetFileName(p)).Order(StringComparer.Ordinal).ToList();
        var actual = Directory.EnumerateFiles(opened.Directory).Select(p => Path.GetFileName(p))
            .Where(n => n != SubmissionOpener.ManifestFileName).Order(StringComparer.Ordinal).ToList();
        Assert.That(actual, Is.EqualTo(expected));
        foreach (var file in expected)
            Assert.That(File.ReadAllBytes(Path.Combine(opened.Directory, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(expectedDir, file))), file);

        // manifest.json maps every original name to the name it was saved as.
        using var manifest = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(opened.Directory, SubmissionOpener.ManifestFileName)));
        var files = manifest.RootElement.GetProperty("files").EnumerateArray().ToList();
        Assert.That(files.Select(f => f.GetProperty("originalName").GetString()), Is.EqualTo(opened.Files.Select(f => f.OriginalName)));
        Assert.That(files.Select(f => f.GetProperty("savedAs").GetString()), Is.EqualTo(opened.Files.Select(f => f.SafeName)));
    }

    [TestCaseSource(nameof(FailVectors))]
    public async Task FailVectorIsRefusedByOniondropOpen(string name)
    {
        using var output = new TempDirectory();
        using var keys = new TempDirectory();
        var blob = Vector(name + ".sealed");
        var result = await Oniondrop.RunAsync(["open", "--key", Seal.PrivateCopy("journalist.key", keys), "-o", output.Path, blob]);
        var reason = File.ReadAllText(Vector(name + ".expect")).Trim();

        Assert.That(result.ExitCode, Is.Not.Zero, result.ToString());
        var lines = result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.That(lines, Has.Length.EqualTo(1), result.ToString());
        Assert.That(lines[0], Does.StartWith($"oniondrop open: {blob}: ").And.Contains(reason));
        Assert.That(Directory.EnumerateFileSystemEntries(output.Path), Is.Empty, "nothing left in the output folder");
    }

    [Test]
    public async Task GoodVectorsOpenThroughTheCliWithAPassphraseProtectedKey()
    {
        using var output = new TempDirectory();
        using var keys = new TempDirectory();
        var goods = GoodVectors().Select(n => Vector(n + ".sealed")).ToArray();
        var result = await Oniondrop.RunAsync(["open", "--key", Seal.PrivateCopy("journalist-protected.key", keys),
            "--passphrase-file", Vector("journalist-protected.passphrase"), "-o", output.Path, .. goods]);
        Assert.That(result.ExitCode, Is.Zero, result.ToString());
        Assert.That(result.Stderr, Is.Empty);
        Assert.That(Directory.EnumerateDirectories(output.Path).Count(), Is.EqualTo(goods.Length));
    }

    [Test]
    public async Task OneRefusedBlobAmongGoodOnesGivesOneLineAndNonZeroExit()
    {
        using var output = new TempDirectory();
        using var keys = new TempDirectory();
        var good = Vector("good_two_files.sealed");
        var bad = Vector("fail_bitflip_body.sealed");
        var result = await Oniondrop.RunAsync(["open", "--key", Seal.PrivateCopy("journalist.key", keys), "-o", output.Path, good, bad]);
        Assert.That(result.ExitCode, Is.EqualTo(1), result.ToString());
        Assert.That(result.Stderr.Trim().Split('\n'), Has.Length.EqualTo(1).And.All.StartsWith($"oniondrop open: {bad}: "));
        Assert.That(Directory.EnumerateFileSystemEntries(output.Path).Select(p => Path.GetFileName(p)), Is.EqualTo(new[] { "two-files-0003" }));
    }

    [Test]
    public void TheWrongKeyVectorOpensWithItsOwnKey()
    {
        // So fail_wrong_key is refused for its key alone, not for being broken.
        using var other = JournalistKey.Load(Vector("other.key"));
        using var output = new TempDirectory();
        using var blob = File.OpenRead(Vector("fail_wrong_key.sealed"));
        Assert.That(SubmissionOpener.Open(blob, other, output.Path, "fail_wrong_key.sealed").Files, Has.Count.EqualTo(1));
    }
}
