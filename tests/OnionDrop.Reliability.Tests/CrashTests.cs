using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// kill -9 of the daemon with 32 uploads in flight, at a moment chosen from what the uploads are doing
/// (in a part's headers, in a body, or just after a body was fully sent, i.e. while it commits), then a
/// restart, round after round on the same data directory. Afterwards: every receipt opens to its exact
/// bytes; nothing half-sent is visible; no piece is left behind; the catalog opens cleanly.
/// </summary>
[Category("EndToEnd")]
public sealed class CrashTests
{
    public enum KillMoment { MidHeader, MidBody, DuringCommit }

    /// <summary>Rounds in the suite; scripts/soak runs more (ONIONDROP_CRASH_ROUNDS).</summary>
    private static int Rounds => int.TryParse(Environment.GetEnvironmentVariable("ONIONDROP_CRASH_ROUNDS"), out var n) && n > 0 ? n : 10;

    private const int InFlight = 32, ExtraCommitRounds = 6;

    [Test]
    public async Task Kill_9_with_32_uploads_in_flight_loses_no_receipted_upload_and_shows_no_unfinished_one()
    {
        using var dir = new TempDirectory("oniondrop-crash-");
        using var journalist = new Journalist();
        var dataDir = dir.Combine("data");
        var seed = Environment.GetEnvironmentVariable("ONIONDROP_CRASH_SEED") is { } s ? int.Parse(s) : Random.Shared.Next();
        TestContext.Out.WriteLine($"seed {seed} (ONIONDROP_CRASH_SEED to repeat), {Rounds} rounds");
        var random = new Random(seed);

        var uploads = new Dictionary<string, SeededUpload>();
        var outcomes = new List<UploadOutcome>();
        var phaseAtKill = new Dictionary<string, UploadPhase>();
        var hits = new Dictionary<UploadPhase, int>();

        // A kill between a body sent in full and its answer needs a commit long enough to land in; with the data on
        // tmpfs (a /tmp there) it takes well under a millisecond, and three such rounds can all miss it. Rounds of
        // that moment are added, up to ExtraCommitRounds, until one has landed: the check at the end still stands.
        for (var round = 0; round < Rounds || (round < Rounds + ExtraCommitRounds && hits.GetValueOrDefault(UploadPhase.Sent) == 0); round++)
        {
            var moment = round < Rounds ? (KillMoment)(round % 3) : KillMoment.DuringCommit;
            await using var daemon = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey);
            Assert.That(Journalist.BlobFiles(dataDir, "*.partial"), Is.Empty, $"round {round}: pieces of interrupted uploads left after start");

            using var client = new UploadClient(daemon.BaseAddress);
            // A first upload warms the daemon up (JIT, libsodium, LiteDB): the kill then lands among uploads
            // that commit at their normal pace, some receipted, some not.
            var warmUp = new SeededUpload($"r{round}w", random.Next(), 1000);
            uploads[warmUp.Label] = warmUp;
            var warm = await client.SendAsync(warmUp, UploadPace.Fast);
            Assert.That(warm.Receipted, Is.True, $"round {round}: warm-up upload failed: {warm.Status} {warm.Error}\n{daemon.Output}");
            outcomes.Add(warm);
            phaseAtKill[warmUp.Label] = UploadPhase.Answered;

            var batch = Enumerable.Range(0, InFlight).Select(i => new SeededUpload($"r{round}u{i}", random.Next(), SizeOf(i, random))).ToList();
            foreach (var u in batch) uploads[u.Label] = u;
            var phases = batch.ToDictionary(u => u.Label, _ => UploadPhase.NotStarted);
            var trigger = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var triggerAfter = random.Next(4, InFlight - 4);
            var seen = 0;

            void OnPhase(SeededUpload u, UploadPhase p)
            {
                lock (phases)
                {
                    phases[u.Label] = p;
                    var wanted = moment switch { KillMoment.MidHeader => UploadPhase.PartHeaders, KillMoment.MidBody => UploadPhase.Body, _ => UploadPhase.Sent };
                    if (p == wanted && ++seen == triggerAfter) trigger.TrySetResult();
                }
            }

            var sending = batch.Select(async (u, i) =>
            {
                await Task.Delay(i * 40);
                // Part headers go out in two pieces with this pause between them: room to land a kill in them.
                var pace = i % 2 == 0 ? new UploadPace(16 * 1024, TimeSpan.FromMilliseconds(8)) : UploadPace.Fast with { Pause = TimeSpan.FromMilliseconds(3) };
                return await client.SendAsync(u, pace, p => OnPhase(u, p));
            }).ToList();

            await Task.WhenAny(trigger.Task, Task.Delay(TimeSpan.FromSeconds(60)));
            Assert.That(trigger.Task.IsCompleted, Is.True, $"round {round}: no upload reached the {moment} moment in 60 s, so the kill would not land there\n{daemon.Output}");
            if (moment != KillMoment.MidHeader) await Task.Delay(random.Next(0, moment == KillMoment.DuringCommit ? (round < Rounds ? 15 : 2) : 200));
            Dictionary<string, UploadPhase> snapshot;
            lock (phases) snapshot = new(phases);
            await daemon.KillAsync();
            var results = await Task.WhenAll(sending).WaitAsync(TimeSpan.FromSeconds(60));

            foreach (var (label, phase) in snapshot)
            {
                phaseAtKill[label] = phase;
                hits[phase] = hits.GetValueOrDefault(phase) + 1;
            }
            outcomes.AddRange(results);
            TestContext.Out.WriteLine($"round {round} ({moment}): at kill {Describe(snapshot.Values)}; receipted {results.Count(r => r.Receipted)}");
            Assert.That(results.Where(r => r.Status is { } code && (int)code >= 500), Is.Empty, "a 5xx before the kill");
        }

        // One more start: it must open the catalog and sweep what the last kill left.
        await using (var last = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey))
        {
            Assert.That(Journalist.BlobFiles(dataDir, "*.partial"), Is.Empty, "pieces of interrupted uploads left after start");
            Assert.That(await last.StopAsync(), Is.EqualTo(0), last.Output);
        }

        var states = Journalist.CatalogStates(dataDir);
        TestContext.Out.WriteLine($"catalog: {string.Join(", ", states.Select(s => $"{s.Key} {s.Value}"))}");
        Assert.That(states.Keys, Is.SubsetOf(new[] { "Committed" }), "only committed entries in the catalog (none damaged)");

        var receipts = outcomes.Where(o => o.Receipted).ToDictionary(o => o.Receipt!, o => o.Upload.Label);
        var opened = journalist.OpenAll(dataDir, uploads, dir.Path);
        TestContext.Out.WriteLine($"phases at kill over all rounds: {string.Join(", ", hits.Select(h => $"{h.Key} {h.Value}"))}");
        TestContext.Out.WriteLine($"{outcomes.Count} uploads, {receipts.Count} receipted, {opened.Count} committed");

        Assert.Multiple(() =>
        {
            Assert.That(opened.Where(o => !o.Identical).Select(o => $"{o.Id}: {o.Problem}"), Is.Empty, "committed submissions that do not open to their upload's bytes");
            var committed = opened.ToDictionary(o => o.Id, o => o.Label);
            foreach (var (receipt, label) in receipts)
            {
                Assert.That(committed.ContainsKey(receipt), Is.True, $"receipt {receipt} ({label}) was lost");
                if (committed.TryGetValue(receipt, out var l)) Assert.That(l, Is.EqualTo(label), $"receipt {receipt} opens to another upload");
            }
            // Committed without a receipt is possible only if the whole body had arrived (killed between the
            // commit and the receipt's bytes): never a half-sent upload.
            foreach (var o in opened.Where(o => !receipts.ContainsKey(o.Id)))
                Assert.That(phaseAtKill.GetValueOrDefault(o.Label ?? ""), Is.EqualTo(UploadPhase.Sent).Or.EqualTo(UploadPhase.Answered),
                    $"{o.Id} ({o.Label}) is visible but its upload had not been sent in full");
            Assert.That(opened.GroupBy(o => o.Label).Where(g => g.Count() > 1).Select(g => g.Key), Is.Empty, "an upload committed twice");
            var sealedFiles = Journalist.BlobFiles(dataDir, "*").Select(Path.GetFileName).Order().ToList();
            Assert.That(sealedFiles, Is.EqualTo(opened.Select(o => o.Id + ".sealed").Order().ToList()), "blobs/ holds exactly the committed submissions");
            Assert.That(outcomes.Count(o => o.Receipted && !o.Upload.Label.EndsWith('w')), Is.GreaterThan(0), "no upload in flight was receipted before a kill");
            Assert.That(hits.GetValueOrDefault(UploadPhase.Body), Is.GreaterThan(0), "no kill landed in a body");
            Assert.That(hits.GetValueOrDefault(UploadPhase.PartHeaders), Is.GreaterThan(0), "no kill landed in a part's headers");
            Assert.That(hits.GetValueOrDefault(UploadPhase.Sent), Is.GreaterThan(0), "no kill landed between a body sent in full and its answer (the commit)");
        });
    }

    /// <summary>Small, medium and a few larger files, so some are still arriving while others commit.</summary>
    private static long SizeOf(int i, Random random) => (i % 4) switch
    {
        0 => random.Next(1, 4096),
        1 => random.Next(16 * 1024, 128 * 1024),
        2 => random.Next(256 * 1024, 1024 * 1024),
        _ => random.Next(1024 * 1024, 3 * 1024 * 1024),
    };

    private static string Describe(IEnumerable<UploadPhase> phases) =>
        string.Join(", ", phases.GroupBy(p => p).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"));
}
