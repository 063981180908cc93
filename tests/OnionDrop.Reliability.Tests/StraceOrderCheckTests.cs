using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>The power-cut order check itself, on hand-written traces: it passes the right order and catches each wrong one.</summary>
public sealed class StraceOrderCheckTests
{
    private const string Id = "7KQ2-M9XD-4HAT-Q0VN-5RWE";
    private const string Data = "/d";

    // A LiteDB log page: page id 8, type 4, prev/next -1, slot 0, transaction 9, confirmed flag, then the entry.
    private static string Page(bool confirmed, string content = "") =>
        @"\10\0\0\0\4\377\377\377\377\377\377\377\377\0\t\0\0\0" + (confirmed ? @"\1" : @"\0") + content;

    private static string[] GoodTrace() =>
    [
        $@"10 openat(AT_FDCWD, ""/d/blobs/{Id}.partial"", O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600) = 20",
        @"10 pwrite64(20, ""ODSEAL\1\0""..., 5504, 0) = 5504",
        "11 fsync(20) = 0",
        "11 close(20) = 0",
        $@"11 rename(""/d/blobs/{Id}.partial"", ""/d/blobs/{Id}.sealed"") = 0",
        @"11 openat(AT_FDCWD, ""/d/blobs"", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 20",
        "11 fsync(20) = 0",
        "11 close(20) = 0",
        @"11 openat(AT_FDCWD, ""/d/catalog-log.db"", O_RDWR|O_CREAT|O_CLOEXEC, 0666) = 30",
        $@"11 pwrite64(30, ""{Page(false, @"\2_id\0\31\0\0\0" + Id)}""..., 8192, 57344) = 8192",
        "11 fsync(30) = 0",
        $@"11 pwrite64(30, ""{Page(true)}""..., 8192, 65536) = 8192",
        "11 fsync(30) = 0",
        @"11 openat(AT_FDCWD, ""/d"", O_RDONLY|O_CLOEXEC|O_DIRECTORY) = 21",
        "11 fsync(21) = 0",
        "11 close(21) = 0",
        $@"12 sendto(40, ""HTTP/1.1 200 OK\r\n...<p class=\""reference\"" id=\""reference\"">{Id}</p>"", 2000, 0, NULL, 0) = 2000",
    ];

    private static List<string> Check(IEnumerable<string> trace) =>
        PowerCutOrderTests.CheckOrder(StraceLog.Parse(trace), Id, Data + "/blobs", Data);

    [Test]
    public void The_right_order_passes() => Assert.That(Check(GoodTrace()), Is.Empty);

    [TestCase(2, "the sealed file is never fsynced")]
    [TestCase(6, "blobs/ is not fsynced after the rename")]
    [TestCase(12, "is not fsynced before the receipt")]
    [TestCase(4, "no rename")]
    [TestCase(14, "the data directory is not fsynced between the creation of catalog-log.db")]
    public void A_missing_step_is_caught(int line, string expected)
    {
        var trace = GoodTrace().ToList();
        trace.RemoveAt(line);
        Assert.That(Check(trace), Has.Some.Contains(expected));
    }

    [Test]
    public void A_commit_mark_fsynced_only_after_the_receipt_is_caught()
    {
        var trace = GoodTrace().ToList();
        var receipt = trace[^1];
        trace.RemoveAt(trace.Count - 1);
        trace.Insert(12, receipt);
        Assert.That(Check(trace), Has.Some.Contains("(its commit mark) is not fsynced before the receipt"));
    }

    [Test]
    public void Calls_interleaved_across_threads_are_ordered_by_their_return()
    {
        var trace = GoodTrace().ToList();
        // The commit mark's fsync is still running when the receipt goes out: not durable yet.
        trace[12] = "11 fsync(30 <unfinished ...>";
        trace.Add("11 <... fsync resumed>) = 0");
        Assert.That(Check(trace), Has.Some.Contains("is not fsynced before the receipt"));
    }
}
