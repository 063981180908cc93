using OnionDrop.Testing;

namespace OnionDrop.Sealing.Tests;

/// <summary>Random damage to a good vector: always a SealedFormatException (never another exception), nothing left behind.</summary>
public class MutationTests
{
    [Test]
    public void EveryDamagedBlobIsRefusedCleanly()
    {
        using var key = JournalistKey.Load(Path.Combine(RepoPaths.Vectors, "journalist.key"));
        var good = File.ReadAllBytes(Path.Combine(RepoPaths.Vectors, "good_two_files.sealed"));
        var random = new Random(2026);
        using var output = new TempDirectory();
        for (var i = 0; i < 300; i++)
        {
            var blob = (byte[])good.Clone();
            string what;
            switch (i % 3)
            {
                case 0:
                    var at = random.Next(blob.Length);
                    var bit = 1 << random.Next(8);
                    blob[at] ^= (byte)bit;
                    what = $"bit {bit} flipped at {at}";
                    break;
                case 1:
                    var length = random.Next(blob.Length);
                    blob = blob[..length];
                    what = $"cut to {length}";
                    break;
                default:
                    var extra = new byte[random.Next(1, 100)];
                    random.NextBytes(extra);
                    var insertAt = random.Next(blob.Length);
                    blob = [.. blob[..insertAt], .. extra, .. blob[insertAt..]];
                    what = $"{extra.Length} bytes inserted at {insertAt}";
                    break;
            }
            Assert.That(() => Seal.Open(blob, key, output.Path), Throws.TypeOf<SealedFormatException>(), what);
            Assert.That(Directory.EnumerateFileSystemEntries(output.Path), Is.Empty, what);
        }
    }
}
