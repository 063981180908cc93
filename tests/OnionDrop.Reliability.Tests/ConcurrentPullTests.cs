using OnionDrop.Testing;
using OnionDrop.Storage;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// `oniondrop fetch` (through `oniondrop pull --stdio`, the SSH forced command, run here with --via) again and
/// again while 16 uploads stream in: when all is done and one last fetch has run, the journalist holds
/// exactly the receipted submissions, each once, each opening to its bytes, and the server holds nothing.
/// </summary>
[Category("EndToEnd")]
public sealed class ConcurrentPullTests
{
    [Test]
    public async Task Fetching_while_16_uploads_stream_in_misses_nothing_duplicates_nothing_corrupts_nothing()
    {
        using var dir = new TempDirectory("oniondrop-pullrace-");
        using var journalist = new Journalist();
        var dataDir = dir.Combine("data");
        var fetched = dir.Combine("fetched");
        var uploads = Enumerable.Range(0, 16).Select(i => new SeededUpload($"c{i}", 500 + i, 20_000 + i * 37_000)).ToList();
        var via = $"dotnet {Oniondrop.Dll} pull --stdio --data-dir {dataDir}";
        var fetches = new List<ProcessResult>();

        await using var daemon = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey);
        using var client = new UploadClient(daemon.BaseAddress);
        // Slow enough (up to 7 s each, started over 6 s) that fetches run while uploads begin, stream and commit.
        var sending = uploads.Select(async (u, i) =>
        {
            await Task.Delay(i * 400);
            return await client.SendAsync(u, new UploadPace(8 * 1024, TimeSpan.FromMilliseconds(100)));
        }).ToList();

        var all = Task.WhenAll(sending);
        while (!all.IsCompleted)
            fetches.Add(await Oniondrop.RunAsync(["fetch", "--via", via, "-o", fetched], TimeSpan.FromMinutes(2)));
        var outcomes = await all;
        fetches.Add(await Oniondrop.RunAsync(["fetch", "--via", via, "-o", fetched], TimeSpan.FromMinutes(2)));
        foreach (var f in fetches) TestContext.Out.WriteLine(f.Stderr.Trim());

        Assert.That(outcomes.Where(o => !o.Receipted).Select(o => $"{o.Upload.Label}: {o.Status} {o.Error}"), Is.Empty);
        Assert.That(fetches.Where(f => f.ExitCode != 0).Select(f => f.ToString()), Is.Empty, "every fetch succeeds");
        Assert.That(fetches.Count - 1, Is.GreaterThanOrEqualTo(2), "fetches ran during the uploads");

        var receipts = outcomes.ToDictionary(o => o.Receipt!, o => o.Upload.Label);
        var files = Directory.GetFiles(fetched).Select(Path.GetFileName).ToList();
        var byLabel = uploads.ToDictionary(u => u.Label);
        var checks = files.Where(f => f!.EndsWith(".sealed")).Select(f =>
        {
            using var blob = File.OpenRead(Path.Combine(fetched, f!));
            return journalist.Check(f![..^".sealed".Length], blob, byLabel, dir.Path);
        }).ToList();

        // The server's own count, read with the daemon stopped (the store then opens directly).
        await daemon.StopAsync();
        int waiting;
        using (var server = SealedBlobStore.Open(dataDir)) waiting = server.GetStats().Waiting;
        Assert.Multiple(() =>
        {
            Assert.That(files.Where(f => !f!.EndsWith(".sealed")), Is.Empty, "nothing but complete .sealed files in the fetch directory");
            Assert.That(checks.Select(c => c.Id), Is.EquivalentTo(receipts.Keys), "fetched set == receipted set");
            Assert.That(checks.Where(c => !c.Identical).Select(c => $"{c.Id}: {c.Problem}"), Is.Empty, "each opens to its bytes");
            Assert.That(checks.Select(c => c.Label), Is.Unique, "no upload fetched twice");
            foreach (var c in checks) Assert.That(c.Label, Is.EqualTo(receipts[c.Id]), $"{c.Id} opens to its own upload");
        });
        Assert.That(waiting, Is.Zero, "the server still has submissions waiting after the last fetch");
    }
}
