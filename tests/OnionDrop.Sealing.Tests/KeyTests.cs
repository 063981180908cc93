using OnionDrop.Testing;

namespace OnionDrop.Sealing.Tests;

public class KeyTests
{
    [Test]
    public void PublicKeyTextRoundTrips()
    {
        using var key = JournalistKey.Generate();
        var text = key.PublicKey.ToString();
        Assert.That(text, Does.Match("^odpk1[a-z2-7]{58}$"));
        Assert.That(RecipientPublicKey.Parse(text), Is.EqualTo(key.PublicKey));
        Assert.That(RecipientPublicKey.Parse("  " + text.ToUpperInvariant() + "\n"), Is.EqualTo(key.PublicKey), "case and surrounding space do not matter");
        Assert.That(key.PublicKey.KeyId.Length, Is.EqualTo(8));
    }

    [Test]
    public void EveryOneCharacterMistypeIsRejected()
    {
        using var key = JournalistKey.Generate();
        var text = key.PublicKey.ToString();
        for (var i = 5; i < text.Length; i++)
            foreach (var c in "a7q")
            {
                if (text[i] == c) continue;
                var typo = text[..i] + c + text[(i + 1)..];
                Assert.That(() => RecipientPublicKey.Parse(typo), Throws.TypeOf<FormatException>(), typo);
            }
        // A transposition of two different neighbours (the first such pair past the prefix: equal ones would swap to the same text).
        var at = Enumerable.Range(10, text.Length - 11).First(i => text[i] != text[i + 1]);
        var swapped = text[..at] + text[at + 1] + text[at] + text[(at + 2)..];
        Assert.That(() => RecipientPublicKey.Parse(swapped), Throws.TypeOf<FormatException>().With.Message.Contains("checksum"));
    }

    [TestCase("", "must start with")]
    [TestCase("age1qqqq", "must start with")]
    [TestCase("odpk1abc", "truncated or mistyped")]
    [TestCase("odpk1aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1a", "invalid character '1'")]
    [TestCase("odsk1 plain odpk1abc c2VjcmV0", "SECRET key")]
    public void MalformedPublicKeysGiveAOneLineReason(string text, string reason) =>
        Assert.That(() => RecipientPublicKey.Parse(text), Throws.TypeOf<FormatException>().With.Message.Contains(reason));

    [Test]
    public void TwoKeysInOneAreToldToGoSeparately()
    {
        using var a = JournalistKey.Generate();
        using var b = JournalistKey.Generate();
        foreach (var joined in new[] { $"{a.PublicKey},{b.PublicKey}", $"{a.PublicKey} {b.PublicKey}" })
            Assert.That(() => RecipientPublicKey.Parse(joined), Throws.TypeOf<FormatException>().With.Message.Contains("one key per --recipient"));
    }

    [Test]
    public void PlainKeyFileIsPrivateExclusiveAndLoads()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("j.key");
        using var key = JournalistKey.Generate();
        key.Save(path);
        Assert.That(File.GetUnixFileMode(path), Is.EqualTo(UnixFileMode.UserRead | UnixFileMode.UserWrite));
        Assert.That(File.ReadAllText(path), Does.Contain(key.PublicKey.ToString()));
        Assert.That(() => key.Save(path), Throws.InstanceOf<IOException>(), "never overwrites");
        Assert.That(JournalistKey.IsProtected(path), Is.False);
        using var loaded = JournalistKey.Load(path, () => throw new AssertionException("no passphrase needed"));
        Assert.That(loaded.PublicKey, Is.EqualTo(key.PublicKey));
    }

    [Test]
    public async Task Argon2idProtectedKeyRoundTripsAndOpens()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("j.key");
        using var key = JournalistKey.Generate();
        key.Save(path, "tröpfchen passphrase");   // default cost: Argon2id moderate
        var text = File.ReadAllText(path);
        Assert.That(text, Does.Contain("odsk1 argon2id").And.Not.Contain(Convert.ToBase64String(key.SecretBytes.ToArray())));
        Assert.That(JournalistKey.IsProtected(path), Is.True);

        Assert.That(() => JournalistKey.Load(path), Throws.TypeOf<FormatException>().With.Message.Contains("passphrase"));
        Assert.That(() => JournalistKey.Load(path, () => "wrong"), Throws.TypeOf<FormatException>().With.Message.EqualTo("wrong passphrase for the key file"));
        // The same words in decomposed form (as some systems type them) give the same key.
        using var loaded = JournalistKey.Load(path, () => "tro\u0308pfchen passphrase");
        Assert.That(loaded.PublicKey, Is.EqualTo(key.PublicKey));

        var blob = await Seal.ToBytesAsync([key.PublicKey], "hi", ("a", [1]));
        using var output = new TempDirectory();
        Assert.That(Seal.Open(blob, loaded, output.Path).Message, Is.EqualTo("hi"));
    }

    [Test]
    public void CorruptKeyFilesAreRefusedClearly()
    {
        using var dir = new TempDirectory();
        using var key = JournalistKey.Generate();
        var path = dir.Combine("j.key");
        key.Save(path);
        var line = File.ReadAllLines(path).Single(l => l.StartsWith("odsk1"));
        var fields = line.Split(' ');

        File.WriteAllText(dir.Combine("pub.key"), key.PublicKey + "\n");
        Assert.That(() => JournalistKey.Load(dir.Combine("pub.key")), Throws.TypeOf<FormatException>().With.Message.Contains("public key"));
        var other = Convert.ToBase64String(new byte[32]);
        File.WriteAllText(dir.Combine("mismatch.key"), $"odsk1 plain {fields[2]} {other}\n");
        Assert.That(() => JournalistKey.Load(dir.Combine("mismatch.key")), Throws.TypeOf<FormatException>().With.Message.Contains("does not match"));
        // A key file is written, not typed: a damaged public key field is the file's damage, not a typo.
        var damaged = fields[2][..20] + (fields[2][20] == 'a' ? 'b' : 'a') + fields[2][21..];
        File.WriteAllText(dir.Combine("damaged.key"), $"odsk1 plain {damaged} {fields[3]}\n");
        Assert.That(() => JournalistKey.Load(dir.Combine("damaged.key")), Throws.TypeOf<FormatException>()
            .With.Message.StartsWith("key file is damaged: its public key field").And.Message.Not.Contains("mistyped"));
        File.WriteAllText(dir.Combine("junk.key"), "hello\n");
        Assert.That(() => JournalistKey.Load(dir.Combine("junk.key")), Throws.TypeOf<FormatException>().With.Message.Contains("not an OnionDrop secret key"));
        Assert.That(() => JournalistKey.Load(dir.Combine("missing.key")), Throws.TypeOf<FormatException>().With.Message.Contains("cannot read"));
    }
}
