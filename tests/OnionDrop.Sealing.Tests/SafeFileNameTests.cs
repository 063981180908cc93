namespace OnionDrop.Sealing.Tests;

public class SafeFileNameTests
{
    [TestCase("report.pdf", "report.pdf")]
    [TestCase("../../etc/passwd", "_.._.._etc_passwd")]
    [TestCase("/etc/shadow", "_etc_shadow")]
    [TestCase("..\\..\\boot.ini", "_.._.._boot.ini")]
    [TestCase(".bashrc", "_.bashrc")]
    [TestCase("..", "fallback")]
    [TestCase("", "fallback")]
    [TestCase("   ", "fallback")]
    [TestCase("-rf", "_-rf")]
    [TestCase("~", "_~")]
    [TestCase("CON", "_CON")]
    [TestCase("aux.txt", "_aux.txt")]
    [TestCase("Com1.tar.gz", "_Com1.tar.gz")]
    [TestCase("console.txt", "console.txt")]
    [TestCase("a\0b\nc\u007f.txt", "a_b_c_.txt")]
    [TestCase("invoice\u202Efdp.exe", "invoice_fdp.exe")]
    [TestCase("trailing. . .", "trailing")]
    [TestCase("quote\"pipe|star*.txt", "quote_pipe_star_.txt")]
    [TestCase("日本語 文書.pdf", "日本語 文書.pdf")]
    [TestCase("nbsp\u00a0space", "nbsp space")]
    public void NeutralisesWhileKeepingNamesRecognisable(string name, string expected) =>
        Assert.That(SafeFileName.Neutralise(name, "fallback"), Is.EqualTo(expected));

    // A file's name as sent may carry the source's local path: only its last part is kept, and a path naming no file
    // (only its owner's folders) gives the fallback, never the folders.
    [TestCase("C:\\Users\\jdupont\\Desktop\\memo.docx", "memo.docx")]
    [TestCase("/home/jdupont/notes.txt", "notes.txt")]
    [TestCase("C:\\Users\\jdupont\\Desktop\\", "file-1")]
    [TestCase("/home/jdupont/..", "file-1")]
    [TestCase("../../.bashrc", "_.bashrc")]
    [TestCase("plain.pdf", "plain.pdf")]
    public void A_file_keeps_only_the_last_part_of_a_path(string sent, string expected) =>
        Assert.That(SafeFileName.ForFile(sent, "file-1"), Is.EqualTo(expected));

    // (In code, not in [TestCase]: an attribute's strings go through metadata, which need not keep U+FFFE as it is.)
    [Test]
    public void NoncharactersAreReplacedNotThrownOn()
    {
        Assert.That(SafeFileName.Neutralise("memo\uFFFE.txt"), Is.EqualTo("memo_.txt"));
        Assert.That(SafeFileName.Neutralise("\uFDD0\uFFFFx\U0001FFFE\U0010FFFF"), Is.EqualTo("__x__"));
    }

    [Test]
    public void LoneSurrogatesAreReplacedNotThrownOn() =>
        Assert.That(SafeFileName.Neutralise("lone" + '\ud800' + "surrogate"), Is.EqualTo("lone_surrogate"));

    [Test]
    public void LongNamesAreCutToTheLimitKeepingTheExtension()
    {
        var safe = SafeFileName.Neutralise(new string('ü', 400) + ".docx");
        Assert.That(System.Text.Encoding.UTF8.GetByteCount(safe), Is.LessThanOrEqualTo(SafeFileName.MaxBytes));
        Assert.That(safe, Does.EndWith("….docx").And.StartWith("üüü"));
    }

    [Test]
    public void DuplicatesAreNumberedCaseInsensitively()
    {
        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "message.txt" };
        Assert.That(new[] { "a.txt", "A.TXT", "a.txt", "message.txt", "noext", "noext" }.Select(n => SafeFileName.Unique(n, taken)),
            Is.EqualTo(new[] { "a.txt", "A (2).TXT", "a (3).txt", "message (2).txt", "noext", "noext (2)" }));
    }

    [Test]
    public void Numbering_many_duplicates_stays_linear_and_gives_the_same_names()
    {
        // A hostile submission of 10,000 files of one name: each duplicate tried every number from 2 again.
        string[] gallery = ["a.txt", "A.TXT", "a (2).txt", "a.txt", "noext", "noext", "a.txt", "message.txt", "a (4).txt", "a.txt"];
        var plain = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "message.txt" };
        var counted = new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "message.txt" };
        var next = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        Assert.That(gallery.Select(n => SafeFileName.Unique(n, counted, next)), Is.EqualTo(gallery.Select(n => SafeFileName.Unique(n, plain)).ToList()));

        var taken = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        next.Clear();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (var i = 0; i < 10_000; i++) SafeFileName.Unique("same name.txt", taken, next);
        Assert.That(taken, Has.Count.EqualTo(10_000));
        Assert.That(clock.Elapsed, Is.LessThan(TimeSpan.FromSeconds(2)), "about 10 ms; quadratic, it took 6 s");
    }
}
