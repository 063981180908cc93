using System.Net;
using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// The data directory on a small ext4 file system of its own, filled until uploads no longer fit: the source
/// gets a calm error page (507, no stack trace), nothing of the refused uploads stays behind, everything
/// received before still opens, and once space is freed the same daemon takes uploads again.
/// </summary>
[Category("EndToEnd")]
[NonParallelizable]
public sealed class FullDiskTests
{
    [Test]
    public async Task A_full_disk_refuses_uploads_with_an_error_page_keeps_earlier_ones_and_recovers_when_space_is_freed()
    {
        using var dir = new TempDirectory("oniondrop-fulldisk-");
        using var journalist = new Journalist();
        using var fs = await LoopFileSystem.MountAsync(dir.Path, 48L * 1024 * 1024);
        var dataDir = Path.Combine(fs.MountPoint, "data");
        var uploads = new Dictionary<string, SeededUpload>();
        var receipts = new Dictionary<string, string>();
        SeededUpload Next(string label, long bytes) => uploads[label] = new SeededUpload(label, uploads.Count + 7, bytes);

        await using (var daemon = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey))
        {
            using var client = new UploadClient(daemon.BaseAddress);
            async Task<UploadOutcome> Send(SeededUpload u)
            {
                var o = await client.SendAsync(u, UploadPace.Fast);
                if (o.Receipted) receipts[o.Receipt!] = u.Label;
                return o;
            }

            for (var i = 0; i < 4; i++)
                Assert.That((await Send(Next($"before{i}", 200_000))).Receipted, Is.True, daemon.Output);

            var filler = fs.Fill(leaveFree: 3 * 1024 * 1024);
            TestContext.Out.WriteLine($"filled: {fs.FreeBytes} bytes free");

            UploadOutcome? refused = null;
            for (var i = 0; i < 40 && refused is null; i++)
            {
                var o = await Send(Next($"full{i}", 400_000));
                if (!o.Receipted) refused = o;
            }
            Assert.That(refused, Is.Not.Null, "the disk never filled up");
            TestContext.Out.WriteLine($"refused after {receipts.Count} receipts: {refused!.Status} {refused.Error}");
            Assert.Multiple(() =>
            {
                Assert.That(refused.Status, Is.EqualTo(HttpStatusCode.InsufficientStorage), $"{refused.Error}\n{refused.Body}\n{daemon.Output}");
                Assert.That(refused.Body, Does.Contain("no room left"), "the disk-full page");
                Assert.That(refused.Body, Does.Not.Contain("Exception").And.Not.Contain("   at "), "no stack trace for the source");
            });

            // A second attempt while still full: refused the same calm way, and the daemon keeps serving.
            var again = await Send(Next("stillfull", 400_000));
            Assert.That(again.Status, Is.EqualTo(HttpStatusCode.InsufficientStorage), again.Error + again.Body);
            Assert.That(Journalist.BlobFiles(dataDir, "*.partial"), Is.Empty, "pieces of refused uploads left behind");

            File.Delete(filler);
            for (var i = 0; i < 3; i++)
            {
                var o = await Send(Next($"after{i}", 300_000));
                Assert.That(o.Receipted, Is.True, $"after space was freed: {o.Status} {o.Error}\n{o.Body}\n{daemon.Output}");
            }
            Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
        }

        var opened = journalist.OpenAll(dataDir, uploads, dir.Path);
        Assert.Multiple(() =>
        {
            Assert.That(opened.Where(o => !o.Identical).Select(o => $"{o.Id} {o.Label}: {o.Problem}"), Is.Empty);
            Assert.That(opened.Select(o => o.Id), Is.EquivalentTo(receipts.Keys), "exactly the receipted submissions are stored");
        });
    }

    [Test]
    public async Task A_disk_filled_by_something_else_while_the_daemon_idles_does_not_stop_it()
    {
        using var dir = new TempDirectory("oniondrop-fulldisk-");
        using var journalist = new Journalist();
        using var fs = await LoopFileSystem.MountAsync(dir.Path, 48L * 1024 * 1024);
        var dataDir = Path.Combine(fs.MountPoint, "data");
        var status = Path.Combine(dataDir, "status.json");
        await using var daemon = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey);
        using var client = new UploadClient(daemon.BaseAddress);
        Assert.That((await client.SendAsync(new SeededUpload("before", 1, 100_000), UploadPace.Fast)).Receipted, Is.True, daemon.Output);

        // Another program takes the last byte; the daemon's own writes (its status file every 5 s) now fail.
        var filler = fs.Fill(leaveFree: 0);
        await Task.Delay(OnionDrop.Daemon.Status.StatusFileWriter.Interval * 2);
        Assert.That(daemon.HasExited, Is.False, "the daemon stopped over a full disk:\n" + daemon.Output);
        var refused = await client.SendAsync(new SeededUpload("full", 2, 100_000), UploadPace.Fast);
        Assert.That(refused.Status, Is.EqualTo(HttpStatusCode.InsufficientStorage), refused.Error + refused.Body);

        File.Delete(filler);
        var freed = DateTime.UtcNow;
        for (var i = 0; i < 40 && File.GetLastWriteTimeUtc(status) < freed; i++) await Task.Delay(500);
        Assert.That(File.GetLastWriteTimeUtc(status), Is.GreaterThan(freed), "status.json is written again");
        Assert.That((await client.SendAsync(new SeededUpload("after", 3, 100_000), UploadPace.Fast)).Receipted, Is.True, daemon.Output);
        Assert.That(daemon.Output, Does.Contain("Cannot write the status file").And.Contain("Status file written again"));
        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
    }
}
