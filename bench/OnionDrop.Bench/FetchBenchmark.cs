using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using OnionDrop.Sealing;
using OnionDrop.Sealing.Interop;
using OnionDrop.Storage;
using Sodium;

namespace OnionDrop.Bench;

/// <summary>
/// The journalist's side, measured in one run against the machine's own limits:
/// `oniondrop fetch` of N sealed submissions (1 GiB in all) through a loopback sshd, beside `scp -r` of the
/// same sealed files as plain files over the same sshd; and `oniondrop open` of those same files, beside
/// libsodium's raw secretstream decryption of the same bytes (memory to memory, one thread) and the disk
/// (dd conv=fdatasync), with dotnet's start-up timed on its own. Targets: ratios >= 0.8.
/// Each open runs --repeats times (default 3), to disk and to tmpfs in turn; medians are printed with the spread.
/// Usage: oniondrop-bench fetch [--count N] [--total-mib M] [--dir DIR] [--repeats R] [--open-only] [--keep]
/// (--open-only seals the files directly, without the store, sshd and fetch: for working on open;
/// --keep leaves the sealed files and the key in place, to profile open by hand.)
/// </summary>
public sealed class FetchBenchmark : IBenchmark
{
    public string Name => "fetch";
    public IReadOnlyList<string> Tools(string[] args) => args.Contains("--open-only") ? ["dd"] : ["dd", "/usr/sbin/sshd", "ssh", "ssh-keygen", "scp"];
    public string Description => "fetch 1,000 submissions (1 GiB) over loopback sshd vs scp; open vs raw secretstream and disk";

    public async Task<int> RunAsync(string[] args)
    {
        int count = 1000, totalMiB = 1024, repeats = 3;
        bool openOnly = false, keep = false;
        var baseDir = Path.GetTempPath();
        for (var i = 0; i < args.Length; i++)
            switch (args[i])
            {
                case "--count" when i + 1 < args.Length: count = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--total-mib" when i + 1 < args.Length: totalMiB = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--dir" when i + 1 < args.Length: baseDir = args[++i]; break;
                case "--repeats" when i + 1 < args.Length: repeats = Math.Max(1, int.Parse(args[++i], CultureInfo.InvariantCulture)); break;
                case "--open-only": openOnly = true; break;
                case "--keep": keep = true; break;
                default: Console.Error.WriteLine("usage: oniondrop-bench fetch [--count N] [--total-mib M] [--dir DIR] [--repeats R] [--open-only] [--keep]"); return 2;
            }
        var cli = FindCli();
        if (cli is null) { Console.Error.WriteLine("fetch: build the CLI first: dotnet build -c Release src/OnionDrop.Cli"); return 2; }
        Console.WriteLine($"fetch: using {cli}");

        var work = Directory.CreateDirectory(Path.Combine(baseDir, $"oniondrop-bench-fetch-{Environment.ProcessId}")).FullName;
        try
        {
            var keyFile = Path.Combine(work, "journalist.key");
            using var key = JournalistKey.Generate();
            key.Save(keyFile);
            var size = (int)(totalMiB * 1024L * 1024 / count);

            string[] files;
            if (openOnly)
            {
                Console.WriteLine($"fetch: sealing {count} submissions of {size / 1024} KiB into files...");
                files = await SealToFilesAsync(Path.Combine(work, "received"), key.PublicKey, count, size);
            }
            else files = await SealFetchAndCompareAsync(work, cli, key.PublicKey, count, size);
            var sealedBytes = files.Sum(f => new FileInfo(f).Length);
            Console.WriteLine($"{count} sealed submissions, {sealedBytes / 1048576.0:0} MiB in all, one run on this machine ({Environment.ProcessorCount} cores, load average {LoadAverage()})");

            // open, beside its limits, all measured now on the same files.
            var startups = new List<(double Wall, double? Cpu)>();
            for (var i = 0; i < 3; i++) startups.Add(await TimeWithCpuAsync("dotnet", [cli, "--version"]));
            var (startup, startupCpu) = startups.MinBy(t => t.Wall);
            var disk = await MachineLimits.DiskMBpsAsync(Path.Combine(work, "dd.tmp"), (int)Math.Max(1, sealedBytes >> 20));
            var pageCache = await MachineLimits.DiskMBpsAsync(Path.Combine(work, "dd.tmp"), (int)Math.Max(1, sealedBytes >> 20), fdatasync: false);
            WarmCache(files);
            var raw = RawSecretStreamSeconds(files, key);
            var sha = MachineLimits.Sha256MBps(sealedBytes);
            // The same open onto tmpfs too, where fsync costs nothing: the CPU pipeline without the disk.
            // In turn, so that both see the same moments of a noisy machine.
            var shm = Directory.Exists("/dev/shm") ? Path.Combine("/dev/shm", $"oniondrop-bench-open-{Environment.ProcessId}") : null;
            // Writing into tmpfs means filling fresh pages, dearer in this VM than the page cache dd above
            // writes into: the ceiling for the open to tmpfs uses dd's speed there, the best of 3 (a ceiling).
            var shmWrite = pageCache;
            if (shm is not null)
            {
                shmWrite = 0;
                for (var i = 0; i < 3; i++)
                    shmWrite = Math.Max(shmWrite, await MachineLimits.DiskMBpsAsync(shm + ".dd", (int)Math.Max(1, sealedBytes >> 20), fdatasync: false));
            }
            var toDisk = new List<(double Wall, double? Cpu)>();
            var toShm = new List<(double Wall, double? Cpu)>();
            for (var i = 0; i < repeats; i++)
            {
                toDisk.Add(await TimeOpenAsync(Path.Combine(work, "opened")));
                if (shm is not null) toShm.Add(await TimeOpenAsync(shm));
            }
            async Task<(double Wall, double? Cpu)> TimeOpenAsync(string into)
            {
                try
                {
                    WarmCache(files);
                    var run = await TimeWithCpuAsync("dotnet", [cli, "open", "--key", keyFile, "-o", into, .. files]);
                    CheckOpened(into, count, size);
                    return run;
                }
                finally { if (Directory.Exists(into)) Directory.Delete(into, recursive: true); }
            }
            var (open, openCpu) = Median(toDisk);
            (double Wall, double? Cpu)? openShmRun = toShm.Count > 0 ? Median(toShm) : null;
            double? openShm = openShmRun?.Wall, openShmCpu = openShmRun?.Cpu;

            double Rate(double seconds) => sealedBytes / seconds / 1e6;
            var openAlone = open - startup;
            var limit = Math.Min(Rate(raw), disk);
            Console.WriteLine($"  dotnet start-up (oniondrop --version, best of 3)          {startup:0.00} s, subtracted below");
            Console.WriteLine($"  disk: dd bs=1M conv=fdatasync              {disk,8:0.0} MB/s");
            Console.WriteLine($"  page cache: the same dd without fdatasync  {pageCache,8:0.0} MB/s  (new files cannot be written faster, fsync or not)");
            Console.WriteLine($"  raw secretstream decryption, same bytes    {Rate(raw),8:0.0} MB/s  ({raw:0.00} s, memory to memory, one thread)");
            Console.WriteLine($"  oniondrop open to disk (fsynced)           {Rate(openAlone),8:0.0} MB/s  ({open:0.00} s with start-up: {Rate(open):0.0} MB/s)   {raw / openAlone:0.00} x libsodium, {Rate(openAlone) / disk:0.00} x disk");
            Console.WriteLine($"    median of {toDisk.Count}: {Spread(toDisk)}");
            Console.WriteLine($"    ratio to the slower limit ({(disk <= Rate(raw) ? "disk" : "libsodium")}): {Rate(openAlone) / limit:0.00} (target >= 0.8: {(Rate(openAlone) / limit >= 0.8 ? "met" : "MISSED")})");
            if (openShm is { } s)
            {
                Console.WriteLine($"  oniondrop open to tmpfs (/dev/shm)         {Rate(s - startup),8:0.0} MB/s  ({s:0.00} s with start-up)   {raw / (s - startup):0.00} x libsodium (target >= 0.8: {(raw / (s - startup) >= 0.8 ? "met" : "MISSED")})");
                Console.WriteLine($"    median of {toShm.Count}: {Spread(toShm)}");
            }
            string Spread(List<(double Wall, double? Cpu)> runs) =>
                $"{Rate(runs.Max(r => r.Wall) - startup):0} .. {Rate(runs.Min(r => r.Wall) - startup):0} MB/s = {raw / (runs.Max(r => r.Wall) - startup):0.00} .. {raw / (runs.Min(r => r.Wall) - startup):0.00} x libsodium";
            // open pays decryption, the plaintext's SHA-256 (checked against the manifest) and writing it out.
            var ceiling = MachineLimits.CeilingMBps(Rate(raw), sha, shmWrite);
            Console.WriteLine($"  ceiling on {Environment.ProcessorCount} cores (decrypt + SHA-256 {sha:0} MB/s + dd into tmpfs {shmWrite:0} MB/s)  {ceiling,8:0.0} MB/s  = {ceiling / Rate(raw):0.00} x libsodium: open to tmpfs reached {(openShm is { } t ? Rate(t - startup) / ceiling : double.NaN):0.00} of it");
            // CPU seconds beyond start-up's: what open costs whatever else runs; over wall time, how many cores it kept busy.
            void Cpu(string what, double wall, double? cpu)
            {
                if (cpu is not { } c || startupCpu is not { } sc) return;
                Console.WriteLine($"    {what}: {c - sc:0.00} CPU-s beyond start-up, {Rate(c - sc),6:0.0} MB per CPU-s, {(c - sc) / (wall - startup):0.00} cores busy on average");
            }
            Cpu("open to disk ", open, openCpu);
            if (openShm is { } w) Cpu("open to tmpfs", w, openShmCpu);
            return 0;
        }
        finally
        {
            if (keep) Console.WriteLine($"fetch: kept {work}");
            else try { Directory.Delete(work, recursive: true); } catch (IOException) { }
        }
    }

    /// <summary>Seals into the real store, then compares `scp -r` and `oniondrop fetch` of it over one loopback sshd.</summary>
    private static async Task<string[]> SealFetchAndCompareAsync(string work, string cli, RecipientPublicKey recipient, int count, int size)
    {
        var data = Path.Combine(work, "data");
        Console.WriteLine($"fetch: sealing {count} submissions of {size / 1024} KiB into a store...");
        using (var store = SealedBlobStore.Open(data))
            await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (n, ct) =>
            {
                await using var writer = store.BeginSubmission();
                await SealAsync(writer.Ciphertext, recipient, writer.Id, n, size, ct);
                await writer.CommitAsync(ct);
            });
        var sealedBytes = Directory.GetFiles(Path.Combine(data, "blobs")).Sum(f => new FileInfo(f).Length);

        using var sshd = await FetchSshd.StartAsync(Path.Combine(work, "ssh"), $"/usr/bin/dotnet {cli} pull --stdio --data-dir {data} --as bench");

        // Baseline: the same sealed files as plain files, copied by scp through the same sshd (before fetch deletes them).
        var scpDir = Path.Combine(work, "scp");
        WarmCache(Directory.GetFiles(Path.Combine(data, "blobs")));
        var scp = await TimeAsync("scp", ["-q", "-r", "-P", sshd.Port.ToString(), .. sshd.Options(sshd.PlainKey), $"{sshd.Target}:{Path.Combine(data, "blobs")}", scpDir]);
        var scpCopied = Directory.GetFiles(scpDir).Sum(f => new FileInfo(f).Length);
        if (scpCopied != sealedBytes) throw new InvalidOperationException($"scp copied {scpCopied} of {sealedBytes} bytes");
        Directory.Delete(scpDir, recursive: true);

        var received = Path.Combine(work, "received");
        WarmCache(Directory.GetFiles(Path.Combine(data, "blobs")));
        var fetch = await TimeAsync("dotnet", [cli, "fetch", sshd.Target, "-o", received, "--port", sshd.Port.ToString(), .. sshd.Options(sshd.ForcedKey).Select(o => "--ssh-arg=" + o)]);
        var files = Directory.GetFiles(received, "*.sealed");
        if (files.Length != count) throw new InvalidOperationException($"fetch brought {files.Length} of {count}");

        double Rate(double seconds) => sealedBytes / seconds / 1e6;
        Console.WriteLine($"  scp -r of the same files                   {Rate(scp),8:0.0} MB/s  ({scp:0.00} s)");
        Console.WriteLine($"  oniondrop fetch                            {Rate(fetch),8:0.0} MB/s  ({fetch:0.00} s)   ratio {scp / fetch:0.00} (target >= 0.8)");
        return files;
    }

    private static async Task<string[]> SealToFilesAsync(string dir, RecipientPublicKey recipient, int count, int size)
    {
        Directory.CreateDirectory(dir);
        var files = Enumerable.Range(0, count).Select(n => Path.Combine(dir, $"{n:00000}.sealed")).ToArray();
        await Parallel.ForEachAsync(Enumerable.Range(0, count), new ParallelOptions { MaxDegreeOfParallelism = 2 }, async (n, ct) =>
        {
            await using var file = new FileStream(files[n], FileMode.CreateNew, FileAccess.Write, FileShare.None, 0);
            await SealAsync(file, recipient, SubmissionId.New(), n, size, ct);
        });
        return files;
    }

    private static async Task SealAsync(Stream output, RecipientPublicKey recipient, string reference, int n, int size, CancellationToken ct)
    {
        await using var sealer = new SubmissionSealer(output, [recipient]);
        await sealer.BeginFileAsync($"doc-{n}.bin", "application/octet-stream", ct);
        await sealer.WriteAsync(Content(n, size), ct);
        await sealer.EndFileAsync(ct);
        await sealer.CompleteAsync(reference, $"message {n}", DateTimeOffset.UtcNow, ct);
    }

    private static byte[] Content(int n, int size)
    {
        var plain = new byte[size];
        new Random(n).NextBytes(plain);
        return plain;
    }

    /// <summary>The run counts only if open produced every file with the bytes sealed (checked on a sample).</summary>
    private static void CheckOpened(string dir, int count, int size)
    {
        var folders = Directory.GetDirectories(dir);
        if (folders.Length != count) throw new InvalidOperationException($"open produced {folders.Length} of {count} folders");
        foreach (var folder in folders.Take(3))
        {
            var n = int.Parse(File.ReadAllText(Path.Combine(folder, SubmissionOpener.MessageFileName))["message ".Length..], CultureInfo.InvariantCulture);
            if (!File.ReadAllBytes(Path.Combine(folder, $"doc-{n}.bin")).AsSpan().SequenceEqual(Content(n, size)))
                throw new InvalidOperationException($"{folder}: opened bytes differ from those sealed");
        }
    }

    private static string? FindCli()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "OnionDrop.sln")))
            {
                // The CLI of this benchmark's own configuration, built with it (a project reference): a Debug
                // build's figures, or a stale one's, say nothing about the product.
                var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
                var cli = Path.Combine(dir.FullName, "src", "OnionDrop.Cli", "bin", configuration, "net10.0", "linux-x64", "oniondrop.dll");
                return File.Exists(cli) ? cli : null;
            }
        return null;
    }

    /// <summary>Wall-clock seconds of a child process that must succeed.</summary>
    private static async Task<double> TimeAsync(string file, string[] args) => (await TimeWithCpuAsync(file, args)).Wall;

    /// <summary>
    /// Wall-clock seconds of a child process that must succeed, and the CPU seconds (user + system) it used,
    /// from /usr/bin/time when present: on a machine others are using, CPU seconds show what wall time hides.
    /// </summary>
    private static async Task<(double Wall, double? Cpu)> TimeWithCpuAsync(string file, string[] args)
    {
        var cpuFile = File.Exists("/usr/bin/time") ? Path.GetTempFileName() : null;
        var psi = new ProcessStartInfo(cpuFile is null ? file : "/usr/bin/time") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        if (cpuFile is not null) foreach (var a in new[] { "-f", "%U %S", "-o", cpuFile, file }) psi.ArgumentList.Add(a);
        foreach (var a in args) psi.ArgumentList.Add(a);
        try
        {
            var clock = Stopwatch.StartNew();
            using var p = Process.Start(psi)!;
            var stdout = p.StandardOutput.ReadToEndAsync();
            var stderr = p.StandardError.ReadToEndAsync();
            await p.WaitForExitAsync();
            var seconds = clock.Elapsed.TotalSeconds;
            if (p.ExitCode != 0) throw new InvalidOperationException($"{file} {args.FirstOrDefault()} exited {p.ExitCode}: {await stderr}");
            await stdout;
            if (cpuFile is null) return (seconds, null);
            var times = File.ReadAllText(cpuFile).Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries);
            return (seconds, double.Parse(times[^2], CultureInfo.InvariantCulture) + double.Parse(times[^1], CultureInfo.InvariantCulture));
        }
        finally
        {
            if (cpuFile is not null) File.Delete(cpuFile);
        }
    }

    /// <summary>
    /// libsodium's crypto_secretstream pull over exactly the chunks of these sealed files, with the journalist's
    /// key: only the pull calls are timed (memory to memory, one thread); reading the files and unwrapping each
    /// stream key are not. This is the bound `open` is measured against.
    /// </summary>
    private static double RawSecretStreamSeconds(string[] files, JournalistKey key)
    {
        var cipher = new byte[SealedFormat.CipherChunkSize];
        var plain = new byte[SealedFormat.ChunkSize];
        long ticks = 0;
        foreach (var path in files)
        {
            using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 0);
            var pre = new byte[SealedFormat.PreambleLength + SealedFormat.RecipientCountLength];
            file.ReadExactly(pre);
            var header = new byte[SealedFormat.HeaderLength(BitConverter.ToUInt16(pre, SealedFormat.PreambleLength))];
            pre.CopyTo(header, 0);
            file.ReadExactly(header.AsSpan(pre.Length));
            // One recipient, the bench's key: its stanza follows the count.
            var stanza = header.AsSpan(pre.Length + SealedFormat.KeyIdLength, SealedFormat.SealedKeyLength).ToArray();
            var streamKey = SealedPublicKeyBox.Open(stanza, key.SecretBytes.ToArray(), key.PublicKey.Bytes.ToArray());
            using var pull = SecretStream.InitPull(streamKey, header.AsSpan(header.Length - SecretStream.HeaderBytes));
            for (var first = true; ; first = false)
            {
                var n = file.ReadAtLeast(cipher, cipher.Length, throwOnEndOfStream: false);
                if (n == 0) break;
                var start = Stopwatch.GetTimestamp();
                var ok = pull.TryPull(cipher.AsSpan(0, n), plain, first ? header : default, out _, out var tag);
                ticks += Stopwatch.GetTimestamp() - start;
                if (!ok) throw new InvalidOperationException($"{path}: secretstream refused a chunk");
                if (tag == SecretStream.TagFinal) break;
            }
        }
        return (double)ticks / Stopwatch.Frequency;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "unknown";

    /// <summary>The run with the median wall time.</summary>
    private static (double Wall, double? Cpu) Median(List<(double Wall, double? Cpu)> runs) => runs.OrderBy(r => r.Wall).ElementAt(runs.Count / 2);

    /// <summary>
    /// Every reader of the files gets them from the page cache, so none pays for the disk another did not. Then
    /// this process's garbage (the 1 GiB arrays a check leaves) is collected, so that no background GC of ours
    /// competes with the timed child for a core.
    /// </summary>
    private static void WarmCache(IEnumerable<string> files)
    {
        var buffer = new byte[1 << 20];
        foreach (var file in files)
        {
            using var f = File.OpenRead(file);
            while (f.Read(buffer) > 0) { }
        }
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
    }
}
