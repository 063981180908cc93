using System.Diagnostics;
using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// The load soak (run by scripts/soak, not by the suite): many slow uploads at a few KiB/s, as over Tor, plus
/// fast ones, for a set time against the real daemon on loopback. Everything receipted must be committed and
/// open identical; the daemon's memory, descriptors and threads must not grow from the start of the run to
/// its end. Prints a table; any loss or corruption fails it.
/// Settings (environment): ONIONDROP_SOAK_SECONDS (300), ONIONDROP_SOAK_SLOW (200), ONIONDROP_SOAK_FAST (4),
/// ONIONDROP_SOAK_RATE bytes/s per slow upload (4096).
/// </summary>
[Explicit("long: run by scripts/soak")]
[Category("Soak")]
public sealed class SoakTests
{
    private static int Setting(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable("ONIONDROP_SOAK_" + name), out var v) && v > 0 ? v : fallback;

    [Test]
    public async Task Slow_and_fast_uploads_for_minutes_are_all_committed_with_flat_memory_descriptors_and_threads()
    {
        var seconds = Setting("SECONDS", 300);
        var slowWorkers = Setting("SLOW", 200);
        var fastWorkers = Setting("FAST", 4);
        var rate = Setting("RATE", 4096);

        using var dir = new TempDirectory("oniondrop-soak-");
        using var journalist = new Journalist();
        var dataDir = dir.Combine("data");
        var uploads = new System.Collections.Concurrent.ConcurrentDictionary<string, SeededUpload>();
        var outcomes = new System.Collections.Concurrent.ConcurrentBag<UploadOutcome>();
        var samples = new List<(double At, ProcessFootprint F)>();

        // A place for every worker: the soak is about time under load, not about the busy page (UploadTests has that),
        // and with the default 64 places 200 slow workers were mostly refused.
        await using var daemon = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey,
            settings: new Dictionary<string, object> { ["MaxConcurrentUploads"] = slowWorkers + fastWorkers });
        using var client = new UploadClient(daemon.BaseAddress);
        var clock = Stopwatch.StartNew();
        var deadline = TimeSpan.FromSeconds(seconds);
        var counter = 0;

        async Task Worker(string kind, int index, Func<Random, long> size, UploadPace pace)
        {
            var random = new Random(index * 7919 + kind.Length);
            await Task.Delay(random.Next(0, 3000)); // not all at once
            while (clock.Elapsed < deadline)
            {
                if (kind == "f") await Task.Delay(random.Next(100, 500)); // fast, not flooding: the soak is about time, not volume
                var upload = new SeededUpload($"{kind}{index}n{Interlocked.Increment(ref counter)}", random.Next(), size(random));
                uploads[upload.Label] = upload;
                outcomes.Add(await client.SendAsync(upload, pace));
            }
        }

        var workers = Enumerable.Range(0, slowWorkers).Select(i => Worker("s", i, r => r.Next(4 * 1024, 32 * 1024), UploadPace.BytesPerSecond(rate)))
            .Concat(Enumerable.Range(0, fastWorkers).Select(i => Worker("f", i, r => r.Next(16 * 1024, 1024 * 1024), UploadPace.Fast)))
            .ToList();
        var all = Task.WhenAll(workers);
        while (!all.IsCompleted)
        {
            samples.Add((clock.Elapsed.TotalSeconds, ProcessFootprint.Of(daemon.Pid)));
            await Task.WhenAny(all, Task.Delay(1000));
        }
        await all;
        var idle = ProcessFootprint.Of(daemon.Pid);
        Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);

        var opened = journalist.OpenAll(dataDir, uploads, dir.Path);
        var receipted = outcomes.Where(o => o.Receipted).ToList();
        var committed = opened.ToDictionary(o => o.Id);
        var lost = receipted.Count(o => !committed.ContainsKey(o.Receipt!));
        var corrupted = opened.Count(o => !o.Identical);
        var failed = outcomes.Count - receipted.Count;

        // Start: the first quarter of the run after its first 10% (start-up, JIT); end: its last quarter.
        var start = samples.Where(s => s.At > seconds * 0.10 && s.At <= seconds * 0.35).Select(s => s.F).ToList();
        var end = samples.Where(s => s.At > seconds * 0.75 && s.At <= seconds).Select(s => s.F).ToList();
        Assert.That(start, Is.Not.Empty);
        Assert.That(end, Is.Not.Empty);
        long PeakRss(List<ProcessFootprint> w) => w.Max(f => f.RssKiB);
        int Median(List<ProcessFootprint> w, Func<ProcessFootprint, int> of) => w.Select(of).Order().ElementAt(w.Count / 2);

        var table = $"""

            OnionDrop soak: {seconds} s, {slowWorkers} slow uploads at {rate} B/s + {fastWorkers} fast, loopback
            | uploads tried        | {outcomes.Count,10} |
            | receipted            | {receipted.Count,10} |
            | failed (no receipt)  | {failed,10} |
            | committed            | {opened.Count,10} |
            | opened identical     | {opened.Count(o => o.Identical),10} |
            | lost                 | {lost,10} |
            | corrupted            | {corrupted,10} |
            | bytes received       | {receipted.Sum(o => o.Upload.FileBytes) / 1048576.0,8:0.0} MiB |
            | peak RSS start / end | {PeakRss(start) / 1024.0,5:0.0} / {PeakRss(end) / 1024.0,5:0.0} MiB |
            | fds start / end      | {Median(start, f => f.FileDescriptors),5} / {Median(end, f => f.FileDescriptors),5} (median; {idle.FileDescriptors} idle after) |
            | threads start / end  | {Median(start, f => f.Threads),5} / {Median(end, f => f.Threads),5} (median; {idle.Threads} idle after) |
            | VmHWM at the end     | {idle.PeakRssKiB / 1024.0,8:0.0} MiB |
            """;
        var series = string.Join("\n", samples.Where((_, i) => i % 10 == 0).Select(s =>
            $"  t={s.At,5:0}s rss={s.F.RssKiB / 1024.0,6:0.0} MiB fds={s.F.FileDescriptors,4} threads={s.F.Threads,3}"));
        table += "\nevery 10 s:\n" + series + "\n";
        TestContext.Out.WriteLine(table);
        await File.WriteAllTextAsync(Path.Combine(TestContext.CurrentContext.WorkDirectory, "soak-table.txt"), table);

        Assert.Multiple(() =>
        {
            Assert.That(lost, Is.Zero, "receipted uploads lost");
            Assert.That(corrupted, Is.Zero, "committed uploads that do not open identical");
            Assert.That(failed, Is.Zero, "uploads refused or cut with nothing wrong with them: " +
                string.Join("; ", outcomes.Where(o => !o.Receipted).Take(5).Select(o => $"{o.Status} {o.Error}")));
            Assert.That(opened.Count, Is.EqualTo(receipted.Count), "committed without a receipt");
            // Flat: the end of the run under the same load needs no more than the start, give or take noise.
            Assert.That(PeakRss(end), Is.LessThanOrEqualTo(PeakRss(start) * 1.25 + 32 * 1024), "resident memory grows");
            Assert.That(Median(end, f => f.FileDescriptors), Is.LessThanOrEqualTo(Median(start, f => f.FileDescriptors) * 1.2 + 16), "file descriptors grow");
            Assert.That(Median(end, f => f.Threads), Is.LessThanOrEqualTo(Median(start, f => f.Threads) * 1.2 + 8), "threads grow");
        });
    }
}
