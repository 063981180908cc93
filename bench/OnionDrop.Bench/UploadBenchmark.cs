using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using OnionDrop.Sealing;

namespace OnionDrop.Bench;

/// <summary>
/// The source's side under load, beside OnionShare's receive mode and the machine's own limits, all in one
/// run: 1 GiB ingest over loopback, peak memory for 100 MiB and 2 GiB, 64 concurrent 16 MiB uploads,
/// GET / requests per second with wrk. Prints medians with min..max over the repeats, and ratios.
/// Usage: oniondrop-bench upload [--repeats 3] [--ingest-mib 1024] [--large-mib 2048] [--concurrent 64] [--dir /var/tmp]
/// </summary>
public sealed class UploadBenchmark : IBenchmark
{
    public string Name => "upload";
    public IReadOnlyList<string> Tools(string[] args) => ["dd", "onionshare-cli", "wrk"];
    public string Description => "ingest, memory, concurrency and GET / vs OnionShare receive mode, disk and libsodium";

    private const long MiB = 1024 * 1024;

    public async Task<int> RunAsync(string[] args)
    {
        var repeats = int.Parse(Arg(args, "--repeats") ?? "3", CultureInfo.InvariantCulture);
        var ingestMiB = long.Parse(Arg(args, "--ingest-mib") ?? "1024", CultureInfo.InvariantCulture);
        var largeMiB = long.Parse(Arg(args, "--large-mib") ?? "2048", CultureInfo.InvariantCulture);
        var concurrent = int.Parse(Arg(args, "--concurrent") ?? "64", CultureInfo.InvariantCulture);
        var root = Path.Combine(Arg(args, "--dir") ?? "/var/tmp", "oniondrop-bench-" + Environment.ProcessId);
        Directory.CreateDirectory(root);
        using var key = JournalistKey.Generate();
        var recipient = key.PublicKey.ToString();
        Console.WriteLine($"upload benchmark: {repeats} repeats, ingest {ingestMiB} MiB, in {root}, {Environment.ProcessorCount} cores");
        try
        {
            // Machine limits, same run.
            var dd = await Repeat(repeats, () => MachineLimits.DiskMBpsAsync(Path.Combine(root, "dd.bin"), (int)ingestMiB));
            var sodium = await Repeat(repeats, () => Task.FromResult(MachineLimits.RawSecretStreamMBps(ingestMiB * MiB)));
            var sha = await Repeat(repeats, () => Task.FromResult(MachineLimits.Sha256MBps(ingestMiB * MiB)));
            var seal = await Repeat(repeats, () => Task.FromResult(SealMBps(key.PublicKey, ingestMiB)));
            Report("disk dd conv=fdatasync", dd, "MB/s");
            Report("libsodium secretstream, raw (memory)", sodium, "MB/s");
            Report("SHA-256 (memory)", sha, "MB/s");
            Report("sealer to /dev/null (both cores; for reference)", seal, "MB/s");
            // The roofline of the crypto alone (secretstream, SHA-256 of the plaintext and of the ciphertext) with
            // every core on it: before the client, TCP, HTTP parsing and the disk take their share of the cores.
            var cryptoCeiling = MachineLimits.CeilingMBps(Median(sodium), Median(sha), Median(sha));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {$"ceiling of the crypto alone on {Environment.ProcessorCount} cores",-52} {cryptoCeiling,16:F1} MB/s"));
            var ceiling = Math.Min(Median(dd), Median(sodium));

            // 1. Ingest.
            var drop = new List<double>();
            var share = new List<double>();
            var dropCpu = new List<double>();
            var shareCpu = new List<double>();
            var dropBusy = new List<double>();
            var shareBusy = new List<double>();
            for (var i = 0; i < repeats; i++)
            {
                await using (var s = await OnionDropServer.StartAsync(root, recipient)) drop.Add(await WarmThen(s, () => IngestMBps(s, ingestMiB * MiB, dropCpu), dropBusy, () => IngestMBps(s, ingestMiB * MiB), IngestWarmRounds));
                await using (var s = await OnionShareServer.StartAsync(root)) share.Add(await WarmThen(s, () => IngestMBps(s, ingestMiB * MiB, shareCpu), shareBusy, () => IngestMBps(s, ingestMiB * MiB), IngestWarmRounds));
            }
            Report($"ingest {ingestMiB} MiB, OnionDrop (committed)", drop, "MB/s");
            Report($"ingest {ingestMiB} MiB, OnionShare", share, "MB/s");
            // What each server spends per GB, whatever else the machine does: OnionDrop's includes the
            // mandatory secretstream and two SHA-256 passes (plaintext for the manifest, ciphertext for the catalog).
            Report("server CPU per GB ingested, OnionDrop", dropCpu, "CPU-s");
            Report("server CPU per GB ingested, OnionShare", shareCpu, "CPU-s");
            Report($"whole machine during OnionDrop's ingest (of {Environment.ProcessorCount})", dropBusy, "cores");
            Report($"whole machine during OnionShare's ingest (of {Environment.ProcessorCount})", shareBusy, "cores");
            Ratio("ingest OnionDrop / OnionShare", Median(drop) / Median(share), ">= 1.5");
            Ratio("ingest OnionDrop / min(disk, libsodium)", Median(drop) / ceiling, ">= 0.7");
            Ratio("ingest OnionDrop / the crypto's ceiling (for reference)", Median(drop) / cryptoCeiling, "none");

            // 2. Peak memory of a fresh daemon for one 100 MiB and one 2 GiB upload.
            var small = new List<double>();
            var large = new List<double>();
            var shareLarge = new List<double>();
            for (var i = 0; i < repeats; i++)
            {
                await using (var s = await OnionDropServer.StartAsync(root, recipient)) { await IngestMBps(s, 100 * MiB); small.Add(s.PeakRssMiB()); }
                await using (var s = await OnionDropServer.StartAsync(root, recipient)) { await IngestMBps(s, largeMiB * MiB); large.Add(s.PeakRssMiB()); }
            }
            await using (var s = await OnionShareServer.StartAsync(root)) { await IngestMBps(s, largeMiB * MiB); shareLarge.Add(s.PeakRssMiB()); }
            Report("peak RSS, OnionDrop, 100 MiB upload", small, "MiB");
            Report($"peak RSS, OnionDrop, {largeMiB} MiB upload", large, "MiB");
            Report($"peak RSS, OnionShare, {largeMiB} MiB upload", shareLarge, "MiB");
            Ratio("peak RSS 2 GiB / 100 MiB", Median(large) / Median(small), "<= 1.2, and 2 GiB < 150 MiB");

            // 3. 64 concurrent 16 MiB uploads.
            var dropC = new List<double>();
            var shareC = new List<double>();
            var dropCBusy = new List<double>();
            var shareCBusy = new List<double>();
            for (var i = 0; i < repeats; i++)
            {
                await using (var s = await OnionDropServer.StartAsync(root, recipient)) dropC.Add(await WarmThen(s, () => ConcurrentMBps(s, concurrent, 16 * MiB), dropCBusy, () => ConcurrentMBps(s, concurrent, 16 * MiB), ConcurrentWarmRounds));
                await using (var s = await OnionShareServer.StartAsync(root)) shareC.Add(await WarmThen(s, () => ConcurrentMBps(s, concurrent, 16 * MiB), shareCBusy, () => ConcurrentMBps(s, concurrent, 16 * MiB), ConcurrentWarmRounds));
            }
            Report($"{concurrent} x 16 MiB concurrent, OnionDrop (all committed)", dropC, "MB/s");
            Report($"{concurrent} x 16 MiB concurrent, OnionShare", shareC, "MB/s");
            Report($"whole machine during OnionDrop's (of {Environment.ProcessorCount})", dropCBusy, "cores");
            Report($"whole machine during OnionShare's (of {Environment.ProcessorCount})", shareCBusy, "cores");
            Ratio("concurrent OnionDrop / OnionShare", Median(dropC) / Median(shareC), ">= 3");

            // 4. GET / with wrk.
            var dropG = new List<double>();
            var shareG = new List<double>();
            await using (var d = await OnionDropServer.StartAsync(root, recipient))
            await using (var o = await OnionShareServer.StartAsync(root))
                for (var i = 0; i < repeats; i++)
                {
                    dropG.Add(await WrkRps(d.Url));
                    shareG.Add(await WrkRps(o.Url));
                }
            Report("GET / (wrk -t2 -c32 -d8s), OnionDrop", dropG, "req/s");
            Report("GET / (wrk -t2 -c32 -d8s), OnionShare", shareG, "req/s");
            Ratio("GET / OnionDrop / OnionShare", Median(dropG) / Median(shareG), ">= 20");
            return 0;
        }
        finally
        {
            try { Directory.Delete(root, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>One upload of <paramref name="bytes"/> in one file, timed from first byte sent to the answer.</summary>
    private static async Task<double> IngestMBps(UploadServer server, long bytes, List<double>? cpuPerGB = null)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromMinutes(30) };
        var before = server.StoredCount();
        var cpu = server.CpuSeconds();
        var watch = Stopwatch.StartNew();
        using var response = await http.PostAsync(new Uri(server.Url, server.UploadPath), new GeneratedUpload(server, bytes));
        watch.Stop();
        cpuPerGB?.Add((server.CpuSeconds() - cpu) / (bytes / 1e9));
        if (!response.IsSuccessStatusCode) throw new InvalidOperationException($"{server.Name}: {(int)response.StatusCode}");
        if (server.StoredCount() != before + 1) throw new InvalidOperationException($"{server.Name}: upload not stored");
        return bytes / 1e6 / watch.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// Untimed runs of the workload before the timed one. For the concurrent uploads, four: code run once per
    /// upload reaches its final tier only after a few hundred uploads (tier 0, then instrumented, then
    /// optimised). Measured by hand, a fresh daemon, rounds of 64 x 16 MiB: methods compiled 7,858 after the
    /// first, 10,567, 12,432, 13,151, 13,218, then flat; daemon CPU 5.5-5.9 s for each of the first three
    /// rounds and 4.3-4.5 from the fifth on.
    /// </summary>
    private const int ConcurrentWarmRounds = 4;

    /// <summary>For the 1 GiB ingest, one: the per-chunk code tiers up within it (by hand, after three 16 MiB uploads, a daemon took 4.5-5.1 CPU-s for its first 1 GiB upload and 3.6-4.4 for the next ones).</summary>
    private const int IngestWarmRounds = 1;

    /// <summary>
    /// Times <paramref name="measure"/> on a warm server, noting how many of the machine's cores were busy
    /// meanwhile (server, client and kernel alike). Both servers get the same warm-up: a daemon serves for
    /// weeks, and a fresh .NET one compiles its hot paths again at higher tiers as they keep running. After a
    /// common warm-up, <paramref name="rounds"/> untimed runs of the workload itself (<paramref name="warmRound"/>); then the page cache's
    /// dirty pages are written back, so that the timed run starts on a clean cache whoever ran before it.
    /// </summary>
    private static async Task<double> WarmThen(UploadServer server, Func<Task<double>> measure, List<double> coresBusy, Func<Task<double>> warmRound, int rounds)
    {
        await ConcurrentMBps(server, 8, 16 * MiB);
        await IngestMBps(server, 256 * MiB);
        for (var i = 0; i < rounds; i++) await warmRound();
        await MachineLimits.FlushDirtyPagesAsync();
        await Task.Delay(500);   // the background compilations the warm-up queued
        var before = MachineLimits.CpuTicks();
        var result = await measure();
        coresBusy.Add(MachineLimits.CoresBusySince(before));
        return result;
    }

    private static async Task<double> ConcurrentMBps(UploadServer server, int count, long bytes)
    {
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = count }) { Timeout = TimeSpan.FromMinutes(30) };
        var before = server.StoredCount();
        var watch = Stopwatch.StartNew();
        var results = await Task.WhenAll(Enumerable.Range(0, count).Select(async _ =>
        {
            using var r = await http.PostAsync(new Uri(server.Url, server.UploadPath), new GeneratedUpload(server, bytes));
            return r.IsSuccessStatusCode;
        }));
        watch.Stop();
        if (results.Any(ok => !ok) || server.StoredCount() != before + count)
            throw new InvalidOperationException($"{server.Name}: {results.Count(ok => ok)} of {count} accepted, {server.StoredCount() - before} stored");
        return count * bytes / 1e6 / watch.Elapsed.TotalSeconds;
    }

    private static async Task<double> WrkRps(Uri url)
    {
        var result = await Run("wrk", "-t2", "-c32", "-d8s", url.ToString());
        var m = Regex.Match(result, @"Requests/sec:\s+([\d.]+)");
        if (!m.Success) throw new InvalidOperationException("wrk: " + result);
        var errors = Regex.Match(result, @"Non-2xx or 3xx responses: (\d+)");
        if (errors.Success) throw new InvalidOperationException($"wrk saw {errors.Groups[1].Value} error responses from {url}");
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static double SealMBps(RecipientPublicKey recipient, long mib)
    {
        var chunk = RandomNumberGenerator.GetBytes(64 * 1024);
        var watch = Stopwatch.StartNew();
        var sealer = new SubmissionSealer(Stream.Null, [recipient]);
        sealer.BeginFileAsync("x", "application/octet-stream").AsTask().Wait();
        for (long done = 0; done < mib * MiB; done += chunk.Length) sealer.WriteAsync(chunk).AsTask().Wait();
        sealer.EndFileAsync().AsTask().Wait();
        sealer.CompleteAsync("bench", "", DateTimeOffset.UtcNow).AsTask().Wait();
        sealer.DisposeAsync().AsTask().Wait();
        return mib * MiB / 1e6 / watch.Elapsed.TotalSeconds;
    }

    private static async Task<string> Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return await stdout + await stderr;
    }

    private static async Task<List<double>> Repeat(int n, Func<Task<double>> measure)
    {
        var values = new List<double>();
        for (var i = 0; i < n; i++) values.Add(await measure());
        return values;
    }

    private static double Median(List<double> v)
    {
        var s = v.Order().ToList();
        return s.Count % 2 == 1 ? s[s.Count / 2] : (s[s.Count / 2 - 1] + s[s.Count / 2]) / 2;
    }

    private static void Report(string what, List<double> v, string unit) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {what,-52} median {Median(v),9:F1} {unit,-5} (min {v.Min():F1} .. max {v.Max():F1}, n={v.Count})"));

    private static void Ratio(string what, double ratio, string target) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  => {what,-49} {ratio,9:F2}x   target {target}"));

    private static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>A one-file multipart body of a given size generated on the fly (no temp file on the client side).</summary>
    private sealed class GeneratedUpload : HttpContent
    {
        private static readonly byte[] Block = RandomNumberGenerator.GetBytes(1 << 20);
        private readonly byte[] _head, _tail;
        private readonly long _size;

        public GeneratedUpload(UploadServer server, long size)
        {
            const string boundary = "----oniondropbench7f3a";
            _size = size;
            _head = Encoding.ASCII.GetBytes($"--{boundary}\r\nContent-Disposition: form-data; name=\"{server.FileField}\"; filename=\"upload-{Guid.NewGuid():N}.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n");
            _tail = Encoding.ASCII.GetBytes($"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{server.MessageField}\"\r\n\r\nbenchmark\r\n--{boundary}--\r\n");
            Headers.TryAddWithoutValidation("Content-Type", $"multipart/form-data; boundary={boundary}");
        }

        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            await stream.WriteAsync(_head);
            for (long sent = 0; sent < _size;)
            {
                var n = (int)Math.Min(Block.Length, _size - sent);
                await stream.WriteAsync(Block.AsMemory(0, n));
                sent += n;
            }
            await stream.WriteAsync(_tail);
        }

        protected override bool TryComputeLength(out long length)
        {
            length = _head.Length + _size + _tail.Length;
            return true;
        }
    }
}
