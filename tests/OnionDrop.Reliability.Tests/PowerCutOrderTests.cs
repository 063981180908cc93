using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// A power cut loses what is only in the page cache, which a kill -9 cannot show. So this proves the order
/// instead, from the kernel's side: the daemon runs under `strace -f`, and for every receipted upload the
/// trace must show, all before the first byte of its receipt goes to the socket:
/// the sealed file's writes then its fsync; the rename ID.partial to ID.sealed; an fsync of blobs/ after it;
/// the catalog's write naming the submission; and an fsync of every catalog file written from then on.
/// </summary>
[Category("EndToEnd")]
public sealed class PowerCutOrderTests
{
    private static readonly string[] Traced = ["openat", "close", "fsync", "fdatasync", "sync_file_range", "rename", "renameat", "renameat2",
        "write", "pwrite64", "writev", "pwritev", "pwritev2", "sendto", "sendmsg", "sendfile"];

    [Test]
    public async Task Every_receipt_is_sent_only_after_its_blob_name_directory_and_catalog_entry_are_on_disk()
    {
        using var dir = new TempDirectory("oniondrop-powercut-");
        using var journalist = new Journalist();
        var dataDir = dir.Combine("data");
        var trace = dir.Combine("strace.txt");
        string[] strace = ["strace", "-f", "-qq", "-s", "9000", "-e", "trace=" + string.Join(',', Traced), "-o", trace];

        var uploads = Enumerable.Range(0, 8).Select(i => new SeededUpload($"p{i}", 1000 + i, 3000 + i * 9000)).ToList();
        UploadOutcome[] outcomes;
        await using (var daemon = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey, wrapper: strace, readyTimeout: TimeSpan.FromSeconds(120)))
        {
            using var client = new UploadClient(daemon.BaseAddress);
            // Four lanes of two uploads each: four at a time, so commits interleave with other uploads' writes.
            outcomes = (await Task.WhenAll(uploads.Chunk(2).Select(async pair =>
            {
                var list = new List<UploadOutcome>();
                foreach (var u in pair) list.Add(await client.SendAsync(u, UploadPace.Fast));
                return list;
            }))).SelectMany(l => l).ToArray();
            Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        }

        Assert.That(outcomes.Where(o => !o.Receipted).Select(o => $"{o.Upload.Label}: {o.Status} {o.Error}"), Is.Empty, "every upload is receipted");
        // Kept as an artifact: the evidence for (or against) the order.
        var kept = Path.Combine(TestContext.CurrentContext.WorkDirectory, "powercut-strace.txt");
        File.Copy(trace, kept, overwrite: true);
        TestContext.AddTestAttachment(kept, "strace -f of the daemon");
        var calls = StraceLog.Parse(File.ReadLines(trace));
        TestContext.Out.WriteLine($"{calls.Count} traced calls");
        var blobs = Path.Combine(dataDir, "blobs");

        Assert.Multiple(() =>
        {
            foreach (var o in outcomes)
            {
                var id = o.Receipt!;
                var problems = CheckOrder(calls, id, blobs, dataDir);
                Assert.That(problems, Is.Empty, $"{id}: not durable before its receipt");
            }
        });

        var opened = journalist.OpenAll(dataDir, uploads.ToDictionary(u => u.Label), dir.Path);
        Assert.That(opened.Count(o => o.Identical), Is.EqualTo(uploads.Count));
    }

    /// <summary>The header fields of a LiteDB 5 page (BasePage: transaction id at 14, confirmed flag at 18).</summary>
    private sealed record LogPage(uint Transaction, bool Confirmed)
    {
        public static LogPage Of(Syscall write)
        {
            var data = StraceLog.Data(write);
            return data.Length < 19 ? new LogPage(uint.MaxValue, false) : new LogPage(BitConverter.ToUInt32(data, 14), data[18] == 1);
        }
    }

    /// <summary>What is missing or out of order for one submission; empty when all is well.</summary>
    public static List<string> CheckOrder(IReadOnlyList<Syscall> calls, string id, string blobsDir, string dataDir)
    {
        var problems = new List<string>();
        var partial = Path.Combine(blobsDir, id + ".partial");
        var sealedPath = Path.Combine(blobsDir, id + ".sealed");
        bool IsWrite(Syscall c) => c.Name is "write" or "pwrite64" or "writev" or "pwritev" or "pwritev2";
        bool IsSync(Syscall c) => c.Name is "fsync" or "fdatasync";
        bool IsCatalog(string? p) => p is not null && Path.GetDirectoryName(p) == dataDir && Path.GetFileName(p).StartsWith("catalog", StringComparison.Ordinal);

        var receipt = calls.FirstOrDefault(c => c.Name is "sendto" or "sendmsg" or "write" or "writev" && c.Path is null
                                                 && c.Args.Contains("id=\\\"reference\\\">" + id));
        if (receipt is null) { problems.Add("no receipt written to a socket in the trace"); return problems; }

        var blobWrites = calls.Where(c => IsWrite(c) && c.Path == partial).ToList();
        if (blobWrites.Count == 0) problems.Add("no write to " + partial);
        var blobSync = calls.LastOrDefault(c => IsSync(c) && c.Path == partial);
        if (blobSync is null) { problems.Add("the sealed file is never fsynced"); return problems; }
        if (blobWrites.Any(w => !w.EndedBefore(blobSync))) problems.Add("a write to the sealed file after its fsync");

        var rename = calls.FirstOrDefault(c => c.Name.StartsWith("rename") && StraceLog.Paths(c) is [var from, var to] && from == partial && to == sealedPath);
        if (rename is null) { problems.Add("no rename .partial -> .sealed"); return problems; }
        if (!blobSync.EndedBefore(rename)) problems.Add("renamed before the file's fsync returned");

        var dirSync = calls.FirstOrDefault(c => IsSync(c) && c.Path == blobsDir && rename.EndedBefore(c));
        if (dirSync is null) { problems.Add("blobs/ is not fsynced after the rename"); return problems; }

        // LiteDB 5 commits by appending the transaction's pages to catalog-log.db; each page header carries
        // the transaction id (bytes 14-17) and the last one its "confirmed" flag (byte 18), without which the
        // transaction is discarded when the log is read back. The first catalog write naming the submission is
        // its entry's transaction (it cannot be in the catalog before).
        var entry = calls.FirstOrDefault(c => IsWrite(c) && IsCatalog(c.Path) && c.Args.Contains(id) && dirSync.EndedBefore(c));
        if (entry is null) { problems.Add("no catalog write naming the submission after the directory's fsync"); return problems; }
        if (Path.GetFileName(entry.Path) != "catalog-log.db") { problems.Add($"the entry went to {entry.Path}, not LiteDB's log"); return problems; }
        var transaction = LogPage.Of(entry).Transaction;
        var pages = calls.Where(c => IsWrite(c) && c.Path == entry.Path && LogPage.Of(c) is { } p && p.Transaction == transaction).ToList();
        var confirm = pages.FirstOrDefault(c => LogPage.Of(c).Confirmed);
        if (confirm is null) problems.Add($"transaction {transaction} is never confirmed in the log");
        foreach (var page in pages)
        {
            if (!page.EndedBefore(receipt)) problems.Add($"a page of transaction {transaction} is written after the receipt (trace line {page.Start})");
            else if (!calls.Any(s => IsSync(s) && s.Path == page.Path && page.EndedBefore(s) && s.EndedBefore(receipt)))
                problems.Add($"page of transaction {transaction} at trace line {page.Start}{(page == confirm ? " (its commit mark)" : "")} is not fsynced before the receipt (line {receipt.Start})");
        }

        // The log file's own name must be durable too: the data directory is fsynced after LiteDB created it.
        var logCreated = calls.LastOrDefault(c => c.Name is "openat" or "open" && StraceLog.Paths(c) is [var opened, ..] && opened == entry.Path && c.Args.Contains("O_CREAT") && c.EndedBefore(entry));
        if (logCreated is not null && !calls.Any(s => IsSync(s) && s.Path == dataDir && logCreated.EndedBefore(s) && s.EndedBefore(receipt)))
            problems.Add($"the data directory is not fsynced between the creation of {Path.GetFileName(entry.Path)} (line {logCreated.Start}) and the receipt");

        foreach (var (what, call) in new[] { ("blob fsync", blobSync), ("rename", rename), ("blobs/ fsync", dirSync) })
            if (!call.EndedBefore(receipt)) problems.Add($"{what} after the receipt");
        return problems;
    }
}
