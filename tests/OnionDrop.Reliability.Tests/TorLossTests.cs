using System.Diagnostics;
using OnionDrop.Testing;

namespace OnionDrop.Reliability.Tests;

/// <summary>
/// `serve --tor launch`: the daemon's own tor is SIGKILLed while uploads stream in over the loopback listener.
/// The supervisor starts a new tor; uploads in flight and after go on; nothing committed is lost.
/// tor runs with DisableNetwork 1: it needs no network (and sends nothing off this machine) to be supervised.
/// </summary>
[Category("EndToEnd")]
public sealed class TorLossTests
{
    [Test]
    public async Task Killing_tor_during_uploads_gets_it_restarted_and_loses_nothing()
    {
        using var dir = new TempDirectory("oniondrop-torloss-");
        using var journalist = new Journalist();
        var dataDir = dir.Combine("data");
        var settings = new Dictionary<string, object> { ["TorExtraConfig"] = new[] { "DisableNetwork 1" } };
        var uploads = Enumerable.Range(0, 16).Select(i => new SeededUpload($"t{i}", 900 + i, 50_000 + i * 20_000)).ToList();
        var later = Enumerable.Range(0, 4).Select(i => new SeededUpload($"after{i}", 950 + i, 100_000)).ToList();
        UploadOutcome[] outcomes;

        await using (var daemon = await DaemonProcess.StartAsync(dataDir, journalist.PublicKey, tor: "launch", settings: settings))
        {
            var firstTor = await WaitForTorAsync(daemon, except: null);
            using var client = new UploadClient(daemon.BaseAddress);
            var phases = new Dictionary<string, UploadPhase>();
            var sending = uploads.Select(async (u, i) =>
            {
                await Task.Delay(i * 150);
                return await client.SendAsync(u, new UploadPace(8 * 1024, TimeSpan.FromMilliseconds(50)), p => { lock (phases) phases[u.Label] = p; });
            }).ToList();

            // Kill tor once uploads are streaming (not after a fixed time, which a loaded machine may not fill).
            bool InFlight() { lock (phases) return phases.Values.Count(p => p is UploadPhase.PartHeaders or UploadPhase.Body) >= 4; }
            for (var waited = Stopwatch.StartNew(); !InFlight() && waited.Elapsed < TimeSpan.FromSeconds(60); ) await Task.Delay(50);
            Assert.That(PosixProcess.Signal(firstTor, PosixProcess.SIGKILL), Is.True, "kill -9 tor");
            lock (phases)
                Assert.That(phases.Values.Count(p => p is UploadPhase.PartHeaders or UploadPhase.Body), Is.GreaterThan(0),
                    $"uploads in flight when tor was killed: {string.Join(", ", phases.Select(p => $"{p.Key} {p.Value}"))}");
            var secondTor = await WaitForTorAsync(daemon, except: firstTor);
            TestContext.Out.WriteLine($"tor {firstTor} killed; the supervisor started tor {secondTor}");

            var first = await Task.WhenAll(sending);
            var second = new List<UploadOutcome>();
            foreach (var u in later) second.Add(await client.SendAsync(u, UploadPace.Fast));
            outcomes = [.. first, .. second];
            Assert.That(PosixProcess.IsAlive(secondTor), Is.True, "the new tor is still running");
            Assert.That(await daemon.StopAsync(), Is.EqualTo(0), daemon.Output);
            Assert.That(PosixProcess.IsAlive(secondTor), Is.False, "tor stops with the daemon");
        }

        Assert.That(outcomes.Where(o => !o.Receipted).Select(o => $"{o.Upload.Label}: {o.Status} {o.Error}"), Is.Empty, "every upload is receipted");
        var opened = journalist.OpenAll(dataDir, uploads.Concat(later).ToDictionary(u => u.Label), dir.Path);
        Assert.Multiple(() =>
        {
            Assert.That(opened.Where(o => !o.Identical).Select(o => $"{o.Id}: {o.Problem}"), Is.Empty);
            Assert.That(opened.Select(o => o.Id), Is.EquivalentTo(outcomes.Select(o => o.Receipt)));
        });
    }

    /// <summary>The daemon's tor child (other than <paramref name="except"/>) once it is there.</summary>
    private static async Task<int> WaitForTorAsync(DaemonProcess daemon, int? except)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            foreach (var child in PosixProcess.Children(daemon.Pid))
                if (child != except && PosixProcess.Name(child) == "tor" && PosixProcess.IsAlive(child)) return child;
            await Task.Delay(100);
        }
        Assert.Fail($"no {(except is null ? "" : "new ")}tor process under the daemon\n{daemon.Output}");
        return -1;
    }
}
